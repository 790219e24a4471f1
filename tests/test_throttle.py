"""Throttling: the CPU budget paces background work; sd_notify speaks only when asked to."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from agent.notify import Notifier
from agent.throttle import CpuBudget, lower_priority, tree_cpu_seconds


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.cpu = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_budget_sleeps_while_over_and_not_while_under():
    """Using a full core against a 25 % budget makes pace() sleep until the average falls back."""
    c = _Clock()
    budget = CpuBudget(0.25, window=10.0, clock=lambda: c.now, cpu=lambda: c.cpu, sleep=c.sleep)
    c.now, c.cpu = 2.0, 2.0  # a full core for two seconds
    budget.pace()
    assert c.now >= 8.0  # 2 CPU-seconds / 0.25 cores = 8 s of wall time before it may go on
    assert budget.usage() <= 0.25 + 1e-6
    slept = budget.throttled_seconds
    c.now += 10.0
    c.cpu += 1.0  # 10 % of a core: under budget
    budget.pace()
    assert budget.throttled_seconds == slept


def test_a_zero_budget_means_no_throttling():
    """share = 0 turns pacing off instead of stopping the sweep for ever."""
    c = _Clock()
    budget = CpuBudget(0.0, clock=lambda: c.now, cpu=lambda: 100.0, sleep=c.sleep)
    budget.pace()
    assert c.now == 0.0


def test_tree_cpu_seconds_counts_this_process():
    """The process tree's CPU time is positive and grows with work."""
    before = tree_cpu_seconds()
    sum(i * i for i in range(300_000))
    assert tree_cpu_seconds() > before > 0


def test_lower_priority_raises_niceness_in_a_child():
    """lower_priority() makes the process nicer (checked in a child so the test run is unaffected)."""
    pid = os.fork()
    if pid == 0:
        lower_priority(7)
        os._exit(0 if os.getpriority(os.PRIO_PROCESS, 0) >= 7 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_notifier_sends_datagrams_and_halves_the_watchdog(tmp_path: Path):
    """With NOTIFY_SOCKET set, fields arrive in one datagram; WATCHDOG_USEC is halved into seconds."""
    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        n = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "4000000"})
        n.send("READY=1", "STATUS=line\nbreak")
        assert listener.recv(100) == b"READY=1\nSTATUS=line break"
    assert n.watchdog_interval == 2.0
    assert Notifier({"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}).watchdog_interval is None
    silent = Notifier({})
    assert not silent.enabled
    silent.send("READY=1")  # nothing to send to, and no error
