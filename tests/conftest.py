"""Shared fixtures: generated samples (never stored malware), an isolated agent home, a CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import samples

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def eicar() -> bytes:
    return samples.eicar()


@pytest.fixture
def agent_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ENDPOINT_AGENT_HOME for this test."""
    home = tmp_path / "agent-home"
    monkeypatch.setenv("ENDPOINT_AGENT_HOME", str(home))
    return home


def run_cli(
    *args: str,
    home: Path,
    stdin: bytes | None = None,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    prefix: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m agent ARGS`` as a user would, with its own agent home."""
    full_env = {**os.environ, "ENDPOINT_AGENT_HOME": str(home), **(env or {})}
    return subprocess.run(
        [*prefix, sys.executable, "-m", "agent", *args],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=timeout,
        env=full_env,
        cwd=ROOT,
        check=False,
    )


def without_dac_override() -> tuple[str, ...]:
    """A command prefix under which file permissions apply, even to root (drops CAP_DAC_*)."""
    if os.geteuid() != 0:
        return ()
    return ("setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all")


def json_lines(stdout: bytes) -> tuple[list[dict], dict]:
    """Split ``scan --json`` output into object lines and the summary line."""
    lines = [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]
    assert lines and lines[-1].get("summary") is True, stdout
    return lines[:-1], lines[-1]


@pytest.fixture(autouse=True)
def _no_leaked_threads():
    """Fail a test that leaves threads running behind it."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
    assert not leaked, f"threads leaked: {leaked}"


def store_bytes(state_dir: Path) -> bytes:
    """Every byte of ``agent.db`` and its WAL and shared-memory files, as one consistent snapshot.

    SQLite deletes the WAL when the last connection closes, after moving its pages into ``agent.db``;
    a file that vanishes while the set is read restarts the read, so no byte is missed.
    """
    for _ in range(50):
        try:
            return b"".join(p.read_bytes() for p in sorted(state_dir.glob("agent.db*")) if p.is_file())
        except FileNotFoundError:
            continue
    raise AssertionError(f"the store in {state_dir} kept changing while it was read")
