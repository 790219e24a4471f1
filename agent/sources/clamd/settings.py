"""Settings of the clamd-compatible socket, checked when built (a bad value names its key)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from agent.errors import ConfigError

__all__ = ["ClamdSettings"]

_MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class ClamdSettings:
    """Where the socket listens and the limits every client is held to.

    - ``socket_path``/``socket_mode``: the Unix socket, 0660 by default (clamd's default is 0666).
    - ``tcp_port``: 0 means no TCP listener; ``tcp_host`` must be a loopback address.
    - ``stream_max_length``: clamd's StreamMaxLength, the most an INSTREAM (or a FILDES file) may hold.
    - ``max_connections``: connections served at once; ``max_client_connections``: of those, how many
      one client process may hold (by SO_PEERCRED pid; all TCP clients count as one client), so no
      single client can take them all. Past either, a connection waits for a slot (as in clamd's
      queue); ``queue_timeout``: seconds it waits before its command gets an ERROR reply. A client
      may have as many connections waiting as it may hold; past that the ERROR comes at once.
    - ``command_read_timeout``: seconds to send the first complete command;
      ``idle_timeout``: seconds a session may wait with nothing in flight before its next command;
      ``read_timeout``: seconds between two pieces of an INSTREAM, and to write a reply.
    - ``in_memory_max``: a stream up to this size is scanned from memory, a larger one is spooled to
      a 0600 file; ``memory_budget`` caps the stream bytes held in memory by all clients together.
    - ``max_session_pending``: commands of one IDSESSION in flight at once before the server stops
      reading that session's next commands (backpressure, not an error).
    """

    socket_path: Path
    socket_mode: int = 0o660
    tcp_port: int = 0
    tcp_host: str = "127.0.0.1"
    stream_max_length: int = 100 * _MIB
    max_connections: int = 256
    max_client_connections: int = 64
    queue_timeout: float = 30.0
    idle_timeout: float = 30.0
    command_read_timeout: float = 30.0
    read_timeout: float = 120.0
    in_memory_max: int = 8 * _MIB
    memory_budget: int = 128 * _MIB
    max_session_pending: int = 16

    def __post_init__(self) -> None:
        if not 0 <= self.socket_mode <= 0o777:
            raise ConfigError(f"clamd.socket_mode: {self.socket_mode:#o} is not a permission mode")
        if not 0 <= self.tcp_port <= 65535:
            raise ConfigError(f"clamd.tcp_port: {self.tcp_port} is not a port (0 turns TCP off)")
        _check_loopback(self.tcp_host)
        for key in ("stream_max_length", "max_connections", "max_client_connections", "max_session_pending"):
            if getattr(self, key) < 1:
                raise ConfigError(f"clamd.{key}: must be at least 1")
        for key in ("in_memory_max", "memory_budget"):
            if getattr(self, key) < 0:
                raise ConfigError(f"clamd.{key}: must not be negative")
        for key in ("idle_timeout", "command_read_timeout", "read_timeout", "queue_timeout"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"clamd.{key}: must be a positive number of seconds")


def _check_loopback(host: str) -> None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError as exc:
        raise ConfigError(
            f"clamd.tcp_host: {host!r} is not an IP address; the clamd TCP socket binds to loopback "
            "only (127.0.0.1 or ::1), because the protocol has no authentication"
        ) from exc
    if not address.is_loopback:
        raise ConfigError(
            f"clamd.tcp_host: {host} is not a loopback address; the clamd TCP socket binds to loopback "
            "only (127.0.0.1 or ::1), because the protocol has no authentication"
        )
