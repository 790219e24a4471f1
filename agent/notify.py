"""sd_notify for a ``Type=notify`` systemd unit: READY, STATUS, WATCHDOG and STOPPING.

The protocol is one datagram per message to the socket named in ``$NOTIFY_SOCKET`` (a path, or an
abstract socket when it starts with ``@``). Without that variable every call does nothing, so the
service runs the same under a terminal, a test or another supervisor.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Mapping

__all__ = ["Notifier"]


class Notifier:
    """Sends sd_notify messages when the service runs under systemd (or a test that listens)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_interval = _watchdog_interval(env)

    @property
    def enabled(self) -> bool:
        """Whether a supervisor listens."""
        return bool(self._address)

    def send(self, *fields: str) -> None:
        """Send ``KEY=value`` fields in one datagram; a supervisor that went away is ignored."""
        if not self._address:
            return
        message = "\n".join(f.replace("\n", " ") for f in fields).encode()
        with (
            contextlib.suppress(OSError),
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock,
        ):
            sock.sendto(message, self._address)


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Half the watchdog period systemd asked for, in seconds, if it asked this process."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000
