"""Start ``endpoint-agent run`` as a real process, as a service manager would, and talk to it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parent.parent


class ServiceProcess:
    """A running service with its own home, config, sd_notify listener and captured log."""

    def __init__(self, home: Path, config: str = "", env: dict[str, str] | None = None) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.config_file = home / "agent.toml"
        self.config_file.write_text(config)
        self.notify_path = home / "notify.sock"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.messages: list[str] = []
        self.log_path = home / "service.log"
        self._log = self.log_path.open("wb")
        full_env = {
            **os.environ,
            "ENDPOINT_AGENT_HOME": str(home),
            "NOTIFY_SOCKET": str(self.notify_path),
            **(env or {}),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "run"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=ROOT,
        )

    def wait_for(self, message: str, timeout: float = 60.0) -> None:
        """Wait for an sd_notify datagram holding ``message`` (e.g. ``READY=1``)."""
        deadline = time.monotonic() + timeout
        while not any(message in m for m in self.messages):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise AssertionError(f"no {message!r} from the service; log:\n{self.log()}")
            self.notify.settimeout(min(left, 1.0))
            try:
                self.messages.append(self.notify.recv(4096).decode())
            except TimeoutError:
                continue

    def status(self) -> dict[str, Any]:
        """``endpoint-agent status --json`` from a separate process."""
        out = subprocess.run(
            [sys.executable, "-m", "agent", "status", "--json"],
            capture_output=True,
            env={**os.environ, "ENDPOINT_AGENT_HOME": str(self.home)},
            cwd=ROOT,
            timeout=30,
            check=False,
        )
        return json.loads(out.stdout)

    def wait_status(self, predicate: Any, timeout: float = 60.0) -> dict[str, Any]:
        """Poll the status until ``predicate(status)`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.status()
            if predicate(info):
                return info
            if time.monotonic() > deadline:
                raise AssertionError(f"status never matched: {info}\nlog:\n{self.log()}")
            time.sleep(0.2)

    def log(self) -> str:
        """Everything the service wrote so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        """The service's JSON log events so far."""
        return [json.loads(line) for line in self.log().splitlines() if line.startswith("{")]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Signal the service and wait for it to exit; return its exit status."""
        if self.notify.fileno() < 0:
            return self.proc.wait(timeout)
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._log.close()
            self._drain_notify()
            self.notify.close()

    def _drain_notify(self) -> None:
        self.notify.setblocking(False)
        while True:
            try:
                self.messages.append(self.notify.recv(4096).decode())
            except (BlockingIOError, OSError):
                return

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
