"""The program monitor against real processes started from copies of /bin/sleep."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from structlog.testing import capture_logs

from agent.errors import ConfigError
from agent.model import Source
from agent.sources.programs import ProgramMonitor, ProgramSettings

SLEEP = shutil.which("sleep") or "/bin/sleep"


@pytest.fixture
def spawn():
    """Start real processes; kill and reap them after the test."""
    procs: list[subprocess.Popen] = []

    def start(exe: Path, *args: str) -> subprocess.Popen:
        p = subprocess.Popen([str(exe), "60", *args], stdin=subprocess.DEVNULL)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.kill()
        p.wait(30)


def copy_sleep(path: Path) -> Path:
    shutil.copy2(os.path.realpath(SLEEP), path)
    path.chmod(0o755)
    return path


def images(requests, exe: Path) -> list:
    return [r for r in requests if r.path == str(exe)]


def test_one_request_per_image_however_many_processes(tmp_path, spawn):
    """Two processes of one image give one request; a third later gives none."""
    exe = copy_sleep(tmp_path / "sleeper")
    monitor = ProgramMonitor()
    spawn(exe)
    spawn(exe)
    first = images(monitor.poll(), exe)
    assert len(first) == 1
    req = first[0]
    assert req.source is Source.PROGRAM and req.data is None
    assert req.stat is not None and req.stat.inode == exe.stat().st_ino
    spawn(exe)
    assert images(monitor.poll(), exe) == []
    assert monitor.stats().new_processes >= 3


def test_a_new_inode_is_reported_again(tmp_path, spawn):
    """Another copy, or the same path replaced by a new file, is a new image."""
    exe = copy_sleep(tmp_path / "sleeper")
    monitor = ProgramMonitor()
    spawn(exe)
    assert len(images(monitor.poll(), exe)) == 1
    other = copy_sleep(tmp_path / "other")
    spawn(other)
    assert len(images(monitor.poll(), other)) == 1
    os.replace(copy_sleep(tmp_path / "staged"), exe)  # same path, new inode
    spawn(exe)
    again = images(monitor.poll(), exe)
    assert len(again) == 1 and again[0].stat.inode == exe.stat().st_ino


def test_deleted_image_is_read_through_proc(tmp_path, spawn):
    """A running program whose file was deleted is scanned from the kernel's copy, by bytes."""
    exe = copy_sleep(tmp_path / "vanishing")
    original = exe.read_bytes()
    spawn(exe)
    exe.unlink()
    monitor = ProgramMonitor()
    with capture_logs() as logs:
        found = images(monitor.poll(), exe)
    assert len(found) == 1
    assert found[0].data == original and found[0].stat is None
    assert monitor.stats().deleted >= 1
    assert "program_image_deleted" in [e["event"] for e in logs]
    assert str(tmp_path) not in repr(logs)


def test_replaced_image_is_not_confused_with_the_new_file(tmp_path, spawn):
    """When the path now holds a different file, the running image is what gets scanned."""
    exe = copy_sleep(tmp_path / "upgraded")
    original = exe.read_bytes()
    spawn(exe)
    exe.unlink()
    exe.write_bytes(b"#!/bin/sh\necho new version\n")
    found = images(ProgramMonitor().poll(), exe)
    assert len(found) == 1 and found[0].data == original


def test_deleted_image_over_the_limit_is_skipped(tmp_path, spawn):
    """A deleted image larger than max_inline_image is counted, not read."""
    exe = copy_sleep(tmp_path / "big")
    spawn(exe)
    exe.unlink()
    monitor = ProgramMonitor(ProgramSettings(max_inline_image=16))
    with capture_logs() as logs:
        assert images(monitor.poll(), exe) == []
    assert monitor.stats().skipped >= 1
    assert "program_image_skipped" in [e["event"] for e in logs]


def test_process_gone_before_its_image_is_looked_at(tmp_path, spawn):
    """A process listed alive but dead by the time its image is read is counted, not fatal."""
    exe = copy_sleep(tmp_path / "brief")
    p = spawn(exe)
    proc = psutil.Process(p.pid)
    p.kill()
    p.wait(30)
    monitor = ProgramMonitor()
    assert monitor._request_for(proc) is None
    assert monitor.stats().vanished == 1


def test_zombies_do_not_break_a_poll(tmp_path):
    """An exited, unreaped child (a zombie) is counted as gone by poll, without error."""
    p = subprocess.Popen(["true"])
    try:
        zombie = psutil.Process(p.pid)
        for _ in range(3000):  # hang guard only
            if zombie.status() == psutil.STATUS_ZOMBIE:
                break
            time.sleep(0.01)
        monitor = ProgramMonitor()
        requests = monitor.poll()
        assert all(r.source is Source.PROGRAM for r in requests)
        assert monitor.stats().vanished >= 1
    finally:
        p.wait(30)


def test_image_memory_is_bounded(tmp_path, spawn):
    """With room for two images, the oldest one is forgotten and reported again."""
    exes = [copy_sleep(tmp_path / f"s{i}") for i in range(3)]
    monitor = ProgramMonitor(ProgramSettings(max_images=2))
    monitor.poll()  # everything already running fills and churns the memory
    for exe in exes:
        spawn(exe)
        assert len(images(monitor.poll(), exe)) == 1
    spawn(exes[0])  # its image was evicted by the two after it
    assert len(images(monitor.poll(), exes[0])) == 1
    spawn(exes[2])  # still remembered
    assert images(monitor.poll(), exes[2]) == []


def test_forget_reports_running_images_again(tmp_path, spawn):
    """After forget() (a rules reload) the next poll reports every running image once more."""
    exe = copy_sleep(tmp_path / "sleeper")
    spawn(exe)
    monitor = ProgramMonitor()
    assert len(images(monitor.poll(), exe)) == 1
    assert images(monitor.poll(), exe) == []
    monitor.forget()
    assert len(images(monitor.poll(), exe)) == 1


def test_process_context_never_leaves(tmp_path, spawn):
    """The command line and environment of a process reach neither a request nor a log line."""
    exe = copy_sleep(tmp_path / "sleeper")
    canary = "cmdline-canary-7f3a"
    spawn(exe, canary)
    exe.unlink()  # the deleted path logs an event, the most talkative case
    with capture_logs() as logs:
        requests = ProgramMonitor().poll()
    assert canary not in repr(logs)
    assert not any(canary in repr(r) for r in requests)


@pytest.mark.parametrize("kwargs", [{"interval": 0}, {"max_images": 0}, {"max_inline_image": -1}], ids=str)
def test_bad_settings_are_config_errors(kwargs):
    """Impossible settings are rejected with ConfigError."""
    with pytest.raises(ConfigError):
        ProgramSettings(**kwargs)
