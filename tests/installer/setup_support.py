"""Helpers of the installer tests: a private home, an agent "binary", a setup runner and a real pty.

The agent binary an install copies is a two-line shell script that runs ``python -m agent``, so the
self-test's ``PING`` reaches a really running service. :class:`Pty` runs the setup on a real pseudo
terminal (``os.openpty``): the line discipline echoes, turns Enter into a newline and ``\\n`` into
``\\r\\n``, as for a user at a terminal.
"""

from __future__ import annotations

import hashlib
import os
import re
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_ANSWERS = ROOT / "installer" / "answers.example.toml"
TIMEOUT = 90.0  # seconds: a hang guard, never a performance assertion


@dataclass(frozen=True, slots=True)
class SetupEnv:
    """A private home (HOME and the XDG dirs inside it), a prefix, and the agent script to install."""

    root: Path
    home: Path
    prefix: Path
    agent: Path
    env: dict[str, str]

    @property
    def outside_marker(self) -> Path:
        """Where the retry-block marker outside the install goes (the user's cache dir)."""
        return self.home / ".cache" / "endpoint-agent-setup" / "age-retry-block"

    @property
    def state_marker(self) -> Path:
        """The retry-block marker in the prefix's state dir."""
        return self.prefix / "state" / "age-retry-block"

    def run(self, *args: str, stdin: str = "", timeout: float = TIMEOUT, prefix_cmd: tuple[str, ...] = ()):
        """Run ``python -m installer ARGS`` (no terminal) and wait."""
        return subprocess.run(
            [*prefix_cmd, sys.executable, "-m", "installer", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=ROOT,
            timeout=timeout,
            check=False,
        )

    def install_args(self, *extra: str) -> list[str]:
        """The usual options of a test install: the prefix, per user, no service manager, the script."""
        return ["--prefix", str(self.prefix), "--user", "--no-service", "--binary", str(self.agent), *extra]


def tree(root: Path) -> dict[str, str]:
    """Every file and directory under ``root`` with its content's SHA-256 (``dir`` for directories)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


class Pty:
    """A command on a real pseudo terminal: wait for text, type lines, collect the whole transcript."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self._master, slave = os.openpty()
        try:
            self.proc = subprocess.Popen(
                argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, start_new_session=True
            )
        finally:
            os.close(slave)
        self.transcript = ""
        self._seen = 0

    def expect(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        """Wait until ``pattern`` (a regex) appears after the previous match; return the match."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.transcript, self._seen)
            if match:
                self._seen = match.end()
                return match
            if time.monotonic() > deadline or not self._read(deadline - time.monotonic()):
                raise AssertionError(f"no {pattern!r} in the output:\n{self.transcript[-3000:]}")

    def send(self, line: str) -> None:
        """Type ``line`` and press Enter."""
        os.write(self._master, line.encode() + b"\r")

    def wait(self, timeout: float = TIMEOUT) -> int:
        """Read the output to its end and return the exit status."""
        deadline = time.monotonic() + timeout
        while self._read(deadline - time.monotonic()):
            pass
        return self.proc.wait(max(1.0, deadline - time.monotonic()))

    def close(self) -> None:
        """Kill the command if it still runs and close the terminal."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        os.close(self._master)

    @property
    def text(self) -> str:
        """The transcript with the terminal's ``\\r\\n`` turned back into ``\\n``."""
        return self.transcript.replace("\r\n", "\n")

    def _read(self, timeout: float) -> bool:
        """Read what is there (waiting up to ``timeout``); False at the end of the output."""
        ready, _, _ = select.select([self._master], [], [], max(0.0, min(timeout, 1.0)))
        if not ready:
            return timeout > 0
        try:
            data = os.read(self._master, 65536)
        except OSError:  # EIO: the command exited and the terminal closed
            return False
        if not data:
            return False
        self.transcript += data.decode("utf-8", "replace")
        return True


def make_setup_env(tmp_path: Path) -> SetupEnv:
    """A fresh private home, an agent script and an (absent) prefix under ``tmp_path``."""
    home = tmp_path / "home"
    home.mkdir()
    agent = tmp_path / "agent.sh"
    agent.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m agent "$@"\n')
    agent.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "ENDPOINT_AGENT_", "NOTIFY_"))}
    env |= {
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    return SetupEnv(tmp_path, home, tmp_path / "prefix", agent, env)
