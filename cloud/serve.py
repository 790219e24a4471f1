"""Running the app on uvicorn over TLS: readiness announcement, ephemeral ports, clean signals."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import structlog
import uvicorn

from cloud.app import create_app
from cloud.service import Settings
from cloud.signing import load_or_create_key, public_key_b64
from cloud.tls import server_context

__all__ = ["serve"]

log = structlog.get_logger("endpoint-cloud")


class _Server(uvicorn.Server):
    """uvicorn's server, announcing the bound port once ready and exiting normally on a signal."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[int], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start listening, then announce the port actually bound (port 0 picks a free one)."""
        await super().startup(sockets)
        if not self.should_exit and self.servers and self.servers[0].sockets:
            self._on_ready(int(self.servers[0].sockets[0].getsockname()[1]))

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Turn SIGINT and SIGTERM into a graceful shutdown, without re-raising them afterwards."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _write_ready(path: Path, url: str, port: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"url": url, "port": port}) + "\n")
    tmp.replace(path)


def serve(
    settings: Settings, host: str, port: int, cert: Path, key: Path, *, ready_file: Path | None = None
) -> int:
    """Serve until SIGINT or SIGTERM; raises SetupError before binding if TLS or the key is unusable."""
    context = server_context(cert, key)
    public_key = public_key_b64(load_or_create_key(settings.signing_key))
    shown_host = f"[{host}]" if ":" in host else host

    def ready(bound: int) -> None:
        url = f"https://{shown_host}:{bound}"
        log.info("server_started", port=bound, signing_public_key=public_key)
        if ready_file is not None:
            _write_ready(ready_file, url, bound)
        print(f"listening on {url}", flush=True)  # noqa: T201 - the readiness line is the interface

    def ssl_factory(_config: uvicorn.Config, _default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        return context

    config = uvicorn.Config(
        create_app(settings), host=host, port=port, ssl_context_factory=ssl_factory,
        log_config=None, access_log=False, server_header=False, proxy_headers=False,
        http="h11", ws="none", loop="asyncio", lifespan="on", timeout_graceful_shutdown=10,
    )  # fmt: skip
    _Server(config, ready).run()
    log.info("server_stopped")
    return 0
