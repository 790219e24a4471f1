"""Running the installed service: systemd (system or ``--user``), or a child process for ``--no-service``.

Both end in the same self-test: the service answers ``PING`` with ``PONG`` on its clamd-compatible
socket. ``systemctl enable --now`` of a ``Type=notify`` unit returns once the service sent
``READY=1`` (or failed), so the self-test right after it sees a service that is up.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from installer.layout import SERVICE_NAME, Layout, Scope
from installer.transaction import InstallError, Transaction
from installer.units import exec_args, systemd_unit

__all__ = ["ChildService", "Systemd", "ping"]

SELFTEST_TIMEOUT = 60.0  # seconds: a hang guard for the service to come up, not a target
_STOP_TIMEOUT = 30.0
_UNIT = f"{SERVICE_NAME}.service"


def ping(path: Path, timeout: float = SELFTEST_TIMEOUT) -> None:
    """Wait until the clamd socket at ``path`` answers ``zPING`` with ``PONG``; raise on timeout."""
    deadline = time.monotonic() + timeout
    last = "no socket yet"
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(10.0)
                sock.connect(str(path))
                sock.sendall(b"zPING\0")
                reply = _read_reply(sock)
        except OSError as exc:
            last = exc.strerror or type(exc).__name__
            time.sleep(0.1)
            continue
        if reply == b"PONG":
            return
        raise InstallError(f"self-test: the service answered PING with {reply[:40]!r}, not PONG")
    raise InstallError(f"self-test: no PONG on {path} within {timeout:.0f} s ({last})")


def _read_reply(sock: socket.socket) -> bytes:
    buf = b""
    while b"\0" not in buf and len(buf) < 4096:
        part = sock.recv(4096)
        if not part:
            break
        buf += part
    return buf.split(b"\0", 1)[0]


@dataclass(frozen=True, slots=True)
class Systemd:
    """systemd, system-wide or as the user's manager, driven through ``systemctl``."""

    scope: Scope

    @property
    def name(self) -> str:
        """How the summary names this manager."""
        return "systemd" if self.scope == "system" else "systemd --user"

    def absent(self) -> str | None:
        """Why this manager cannot be used here, or ``None`` when it can."""
        if shutil.which("systemctl") is None:
            return "systemd is not installed here (no systemctl)"
        if self.scope == "system":
            if not Path("/run/systemd/system").is_dir():
                return f"systemd is not running on this machine (PID 1 is {_pid1()}, not systemd)"
            return None
        out = self._run("show-environment", check=False)
        if out.returncode != 0:
            reason = (out.stderr.strip().splitlines() or ["no answer"])[0]
            return f"no systemd user manager is running for this user ({reason})"
        return None

    def install(self, tx: Transaction, layout: Layout) -> None:
        """Write the unit, reload, enable and start it; each step is undone on rollback."""
        reload = f"systemctl{self._flag} daemon-reload"
        tx.on_rollback(f"ran {reload}", self._reload)
        tx.write(layout.unit_file, systemd_unit(layout).encode(), 0o644, f"the {self.name} unit")
        tx.action(reload, self._reload, None, "")
        tx.action(
            f"systemctl{self._flag} enable --now {_UNIT}",
            lambda: self._call("enable", "--now", _UNIT),
            lambda: self._call("disable", "--now", _UNIT, check=False),
            f"stopped and disabled {_UNIT}",
        )

    def selftest(self, layout: Layout) -> None:
        """PING the running service."""
        ping(layout.clamd_socket)

    def remove(self, layout: Layout) -> list[str]:
        """Stop, disable and remove the unit; return what was done."""
        done = []
        absent = self.absent()
        if absent is None:
            self._run("disable", "--now", _UNIT, check=False)
            done.append(f"stopped and disabled {_UNIT}")
        else:
            done.append(f"could not stop {_UNIT}: {absent}")
        if layout.unit_file.exists():
            layout.unit_file.unlink()
            done.append(f"removed {layout.unit_file}")
            if absent is None:
                self._reload()
        return done

    @property
    def _flag(self) -> str:
        return " --user" if self.scope == "user" else ""

    def _reload(self) -> None:
        self._run("daemon-reload")

    def _call(self, *args: str, check: bool = True) -> None:
        self._run(*args, check=check)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = ["systemctl", *(["--user"] if self.scope == "user" else []), *args]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise InstallError(f"{' '.join(cmd)}: {exc}") from exc
        if check and out.returncode != 0:
            raise InstallError(f"{' '.join(cmd)} failed: {out.stderr.strip()[-500:]}")
        return out


def _pid1() -> str:
    try:
        return Path("/proc/1/comm").read_text(encoding="utf-8").strip() or "unknown"
    except OSError:
        return "unknown"


@dataclass(frozen=True, slots=True)
class ChildService:
    """``--no-service``: no service manager; the self-test runs the agent as a child, then stops it."""

    name: str = "none (--no-service)"

    def absent(self) -> str | None:
        """A child process is always possible."""
        return None

    def install(self, tx: Transaction, layout: Layout) -> None:
        """Keep the generated unit in the install, for reference; no manager is told about it."""
        tx.write(layout.unit_file, systemd_unit(layout).encode(), 0o644, "the systemd unit (not installed)")

    def selftest(self, layout: Layout) -> None:
        """Start the installed binary as ``run``, PING it, stop it."""
        env = {
            **os.environ,
            "ENDPOINT_AGENT_HOME": str(layout.state_dir),
            "TMPDIR": str(layout.state_dir / "tmp"),
        }
        env.pop("NOTIFY_SOCKET", None)
        with tempfile.TemporaryFile() as log:
            try:
                proc = subprocess.Popen(
                    exec_args(layout),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    env=env,
                    start_new_session=True,
                )
            except OSError as exc:
                raise InstallError(f"self-test: cannot start {layout.binary}: {exc.strerror}") from exc
            try:
                _ping_child(proc, layout, log)
            finally:
                _stop(proc)

    def remove(self, layout: Layout) -> list[str]:
        """Remove the reference unit."""
        if layout.unit_file.exists():
            layout.unit_file.unlink()
            return [f"removed {layout.unit_file}"]
        return []


def _ping_child(proc: subprocess.Popen[bytes], layout: Layout, log: IO[bytes]) -> None:
    deadline = time.monotonic() + SELFTEST_TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(InstallError):
            ping(layout.clamd_socket, timeout=0.5)
            return
    log.seek(0)
    tail = log.read()[-1500:].decode("utf-8", "replace")
    status = f"exited with {proc.returncode}" if proc.poll() is not None else "did not answer"
    raise InstallError(f"self-test: the service {status}; its last output:\n{tail}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child's process group, then SIGKILL it if it has not gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
