"""The service's control socket (mode 0600): ``endpoint-agent status`` asks, the service answers.

One request per connection: a command line (``STATUS``, ``SWEEP``), answered with one JSON object
on one line.
The answer holds counts, versions and resource use only, never a path or a name.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from agent.errors import ProtocolError

__all__ = ["ControlServer", "query"]

_MAX_REQUEST = 64
_TIMEOUT = 5.0


class _Handler(socketserver.StreamRequestHandler):
    server: _Server
    timeout = _TIMEOUT

    def handle(self) -> None:
        try:
            line = self.rfile.readline(_MAX_REQUEST).strip().upper()
        except OSError:
            return
        handler = self.server.handlers.get(line.decode("ascii", "replace"))
        if handler is not None:
            reply: Mapping[str, Any] = handler()
        else:
            reply = {"error": f"unknown command; try {', '.join(sorted(self.server.handlers))}"}
        with contextlib.suppress(OSError):
            self.wfile.write(json.dumps(reply, sort_keys=True).encode() + b"\n")


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, path: str, handlers: Mapping[str, Callable[[], Mapping[str, Any]]]) -> None:
        self.handlers = handlers
        old = os.umask(0o177)  # the socket is born 0600: no window where others could connect
        try:
            super().__init__(path, _Handler)
        finally:
            os.umask(old)
        Path(path).chmod(0o600)


class ControlServer:
    """Serves commands (``STATUS``, ``SWEEP``: upper-case names to handlers) on a Unix socket."""

    def __init__(self, path: Path, handlers: Mapping[str, Callable[[], Mapping[str, Any]]]) -> None:
        self.path = path
        _remove_stale(path)
        self._server = _Server(str(path), handlers)
        self._thread = threading.Thread(target=self._server.serve_forever, name="control", daemon=True)

    def start(self) -> None:
        """Start answering."""
        self._thread.start()

    def close(self) -> None:
        """Stop answering and remove the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2.0)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _remove_stale(path: Path) -> None:
    """Remove a socket left by a service that died; refuse to start beside a live one."""
    if not path.exists() and not path.is_symlink():
        return
    try:
        query(path, timeout=1.0)
    except ProtocolError:
        path.unlink()
        return
    raise ProtocolError("another service is already running with this state directory")


def query(path: Path, command: str = "STATUS", timeout: float = _TIMEOUT) -> dict[str, Any]:
    """Ask a running service; raise ProtocolError when none answers."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(command.encode() + b"\n")
            data = b""
            while not data.endswith(b"\n") and (chunk := sock.recv(65536)):
                data += chunk
    except OSError as exc:
        raise ProtocolError(f"no service answers on the control socket ({exc.strerror or exc})") from exc
    try:
        reply = json.loads(data)
    except ValueError as exc:
        raise ProtocolError("the service sent a malformed status") from exc
    if not isinstance(reply, dict):
        raise ProtocolError("the service sent a malformed status")
    return reply
