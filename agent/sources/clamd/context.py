"""What all connections of one server share: settings, the backend, the I/O threads, the budget."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import structlog

from agent.model import Outcome, ScanRequest
from agent.sources.clamd.settings import ClamdSettings
from agent.sources.clamd.spool import MemoryBudget

if TYPE_CHECKING:
    from agent.sources.clamd.server import Backend

__all__ = ["ServerContext"]

T = TypeVar("T")
log = structlog.get_logger("endpoint-agent")


@dataclass(slots=True)
class ServerContext:
    """Shared by the connections of one server; used on the server's event loop only."""

    settings: ClamdSettings
    backend: Backend
    spool_dir: Path
    loop: asyncio.AbstractEventLoop
    io: concurrent.futures.ThreadPoolExecutor
    budget: MemoryBudget
    connections: int = 0
    _reload: asyncio.Future[None] | None = field(default=None, repr=False)

    async def run(self, fn: Callable[[], T], discard: Callable[[T], None] | None = None) -> T:
        """Run blocking ``fn()`` on an I/O thread; when cancelled, still wait for it to finish.

        The wait matters: ``fn`` may be writing to a descriptor that the cancelled caller's cleanup
        is about to close. If the caller was cancelled, ``discard`` gets the result it will never see.
        """
        future = self.loop.run_in_executor(self.io, fn)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            while not future.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([future])
            if discard is not None and not future.cancelled() and future.exception() is None:
                discard(future.result())
            raise

    async def outcome(
        self, request: ScanRequest, release: Callable[[], None] | None = None
    ) -> Outcome | None:
        """Submit ``request`` to the backend and wait for its outcome; None if the backend failed.

        ``release`` runs once the outcome exists (or the submission failed), on whichever thread
        that happens: it frees the request's memory or unlinks its spool file.
        """
        try:
            future = self.backend.submit(request)
        except Exception as exc:  # noqa: BLE001 - a backend that cannot take work gets an ERROR reply
            if release is not None:
                release()
            log.warning("clamd_submit_failed", error=type(exc).__name__)
            return None
        del request
        if release is not None:
            future.add_done_callback(lambda _done: release())
        try:
            return await asyncio.wrap_future(future, loop=self.loop)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if future.cancelled() and task is not None and not task.cancelling():
                log.warning("clamd_scan_failed", error="cancelled by the backend")
                return None
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the backend raised, the client gets an ERROR reply
            log.warning("clamd_scan_failed", error=type(exc).__name__)
            return None

    def reload(self) -> None:
        """Ask the backend to reload its rules, on an I/O thread; a reload in progress absorbs it."""
        if self._reload is not None and not self._reload.done():
            return
        self._reload = self.loop.run_in_executor(self.io, self.backend.reload)
        self._reload.add_done_callback(_log_reload)


def _log_reload(future: asyncio.Future[None]) -> None:
    if future.cancelled():
        return
    error = future.exception()
    if error is not None:
        log.error("clamd_reload_failed", error=type(error).__name__)
