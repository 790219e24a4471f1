"""The rest of the command line: version, config commands, odd file names, the installed script."""

from __future__ import annotations

import os
import re
import sys
import threading
import tomllib
from pathlib import Path

import pytest
import samples
from conftest import json_lines, run_cli


def test_version():
    """--version prints the version and exits 0."""
    proc = run_cli("--version", home=Path("/nonexistent-home"))
    assert proc.returncode == 0
    assert proc.stdout.startswith(b"endpoint-agent ")


def test_config_example_and_show(tmp_path):
    """`config example` is valid TOML; `config show` reflects a value from agent.toml."""
    example = run_cli("config", "example", home=tmp_path)
    assert example.returncode == 0
    assert "limits" in tomllib.loads(example.stdout.decode())
    (tmp_path / "agent.toml").write_text("[limits]\nmax_files = 77\n")
    shown = run_cli("config", "show", home=tmp_path)
    assert shown.returncode == 0
    assert "max_files = 77" in shown.stdout.decode()


def test_config_option_after_the_command(tmp_path):
    """--config works after the command name too, and a missing file is a clear error."""
    proc = run_cli("scan", "--config", str(tmp_path / "missing.toml"), str(tmp_path), home=tmp_path)
    assert proc.returncode == 2
    assert b"config file not found" in proc.stderr


def test_too_many_jobs_is_refused_before_any_worker_starts(tmp_path):
    """A typo in --jobs is a usage error: 100,000 workers would run the machine out of memory."""
    target = tmp_path / "f.txt"
    target.write_text("hello")
    proc = run_cli("scan", "--jobs", "100000", str(target), home=tmp_path)
    assert proc.returncode == 2
    assert b"--jobs must be between 1 and" in proc.stderr
    assert b"Traceback" not in proc.stderr


def _garbage_store(home: Path) -> None:
    home.mkdir()
    (home / "agent.db").write_bytes(bytes(range(256)) * 20)


def _key_is_a_directory(home: Path) -> None:
    (home / "master.key").mkdir(parents=True)


def _home_is_a_file(home: Path) -> None:
    home.write_text("not a directory")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            _garbage_store,
            b"agent.db is damaged (file is not a database); move it aside",
        ),
        (_key_is_a_directory, b"master secret"),
        (_home_is_a_file, b"is not a directory (it comes from ENDPOINT_AGENT_HOME"),
    ],
)
def test_a_damaged_state_dir_is_a_clear_error(tmp_path, damage, message):
    """A damaged store, a key that is a directory, a home that is a file: each named, no traceback."""
    home = tmp_path / "home"
    damage(home)
    target = tmp_path / "f.txt"
    target.write_text("hello")
    proc = run_cli("scan", str(target), home=home)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert b"Traceback" not in proc.stderr
    assert b"internal error" not in proc.stderr


def test_undecodable_file_names_are_scanned_and_reported(tmp_path):
    """A file name that is not valid UTF-8 is scanned; JSON and console output stay valid and inert."""
    tree = tmp_path / "t"
    tree.mkdir()
    raw = os.fsencode(tree) + b"/bad-\xff\xfe-name.com"
    with open(raw, "wb") as fh:
        fh.write(samples.eicar())
    proc = run_cli("scan", "--json", str(tree), home=tmp_path / "h")
    objects, _ = json_lines(proc.stdout)
    assert proc.returncode == 1
    assert objects[0]["verdict"] == "malicious"
    assert "bad-" in objects[0]["path"]
    console = run_cli("scan", str(tree), home=tmp_path / "h")
    assert b"bad-\\xff\\xfe-name.com" in console.stdout


def test_installed_console_script():
    """The `endpoint-agent` console script is installed next to the interpreter and runs."""
    script = Path(sys.executable).parent / "endpoint-agent"
    if not script.exists():
        pytest.skip("not installed into this interpreter's environment")
    import subprocess

    proc = subprocess.run([str(script), "--version"], capture_output=True, check=False, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.startswith(b"endpoint-agent ")


def test_terminal_shows_progress_summary_and_receipt(tmp_path):
    """On a real terminal (a pty) the scan shows the progress line, the summary and the receipt."""
    import pty
    import select
    import subprocess

    tree = tmp_path / "t"
    tree.mkdir()
    for i in range(300):
        (tree / f"f{i}.txt").write_text(f"line {i}\n" * 50)
    (tree / "eicar.com").write_bytes(samples.eicar())
    primary, secondary = pty.openpty()
    env = {**os.environ, "ENDPOINT_AGENT_HOME": str(tmp_path / "h"), "COLUMNS": "120", "TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "scan", "--receipt", str(tree)],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    os.close(secondary)
    out = b""
    while True:
        ready, _, _ = select.select([primary], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(primary, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=60)
    os.close(primary)
    text = out.decode(errors="replace")
    assert proc.returncode == 1
    assert re.search(r"[\d,]+ files  [\d,]+ files/s  [\d,.]+ MB/s", text), "no progress line"
    assert "Scan summary" in text and "Privacy receipt" in text
    assert "EICAR_Test_File" in text


def test_a_reader_that_goes_away_is_not_an_internal_error(tmp_path):
    """`scan --json | head -1`: when stdout closes early the scan stops quietly, with no traceback."""
    import subprocess

    tree = tmp_path / "t"
    tree.mkdir()
    for i in range(2000):
        (tree / f"f{i}.txt").write_text("x")
    env = {**os.environ, "ENDPOINT_AGENT_HOME": str(tmp_path / "h")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "scan", "--json", str(tree)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    proc.wait(timeout=60)
    assert proc.returncode == 2
    assert b"internal error" not in err and b"Traceback" not in err


class _Ended(Exception):
    """Raised by the stand-in for os._exit, carrying the status."""


def test_entry_point_ends_at_once_only_when_no_other_thread_runs(monkeypatch, capsys):
    """`run` flushes and skips interpreter teardown with os._exit; with another thread alive it exits normally."""
    from agent import cli

    def fake_exit(code):
        raise _Ended(code)

    def fake_main():
        print("last line")  # still in the buffer when run() takes over
        return 3

    monkeypatch.setattr(cli, "main", fake_main)
    monkeypatch.setattr(os, "_exit", fake_exit)
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    with pytest.raises(_Ended) as ended:
        cli.run()
    assert ended.value.args == (3,)
    assert capsys.readouterr().out == "last line\n"

    monkeypatch.setattr(threading, "active_count", lambda: 2)  # e.g. a delivery thread still running
    with pytest.raises(SystemExit) as exited:
        cli.run()
    assert exited.value.code == 3


def test_a_locked_store_is_not_called_damaged(tmp_path):
    """Another process holding the store's write lock: retry, not "move it aside" (which loses data)."""
    import sqlite3

    home = tmp_path / "home"
    target = tmp_path / "f.txt"
    target.write_text("hello")
    assert run_cli("scan", str(target), home=home).returncode == 0  # creates the store
    holder = sqlite3.connect(home / "agent.db", isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        proc = run_cli("scan", "--no-cache", str(target), home=home)
    finally:
        holder.close()
    assert proc.returncode == 2
    assert b"retry" in proc.stderr
    assert b"move it aside" not in proc.stderr
