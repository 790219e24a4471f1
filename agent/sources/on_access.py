"""On-access scanning: file events settle in a bounded queue, a consumer thread submits them.

The watchdog handler only offers paths to the :class:`SettleQueue`; nothing blocks the observer. One
consumer thread takes the items that have settled (no event for ``settle`` seconds) and turns them
into scan requests: a file is scanned at its current stat (so the cache answers a file that did not
really change), a directory marker is walked, and a sweep marker (events were lost) asks the
background sweep to run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import structlog

from agent.model import Outcome, ScanRequest
from agent.sources.fs_watch import FileWatcher, WatchSettings
from agent.sources.settle import ItemKind, SettledItem, SettleQueue, SettleSettings

__all__ = ["OnAccess"]

log = structlog.get_logger("endpoint-agent")
_ROOT_CHECK = 10.0  # seconds between checks that every watched root is still watched


class OnAccess:
    """Watcher, settle queue and consumer thread, started and stopped as one component."""

    def __init__(
        self,
        roots: tuple[str, ...],
        watch: WatchSettings,
        settle: SettleSettings,
        always_exclude: tuple[str, ...],
        *,
        submit: Callable[[ScanRequest], Future[Outcome]],
        request_sweep: Callable[[], None],
    ) -> None:
        self.queue = SettleQueue(settle)
        self.watcher = FileWatcher(roots, watch, self.queue, always_exclude=always_exclude)
        self._submit, self._request_sweep = submit, request_sweep
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._consume, name="on-access", daemon=True)
        self.submitted = 0

    def start(self) -> None:
        """Start watching and consuming."""
        self.watcher.start()
        self._thread.start()

    def stop(self) -> None:
        """Stop watching; items still settling are left to the next sweep."""
        self._stop.set()
        self.queue.close()
        self._thread.join(5.0)
        self.watcher.stop()

    def status(self) -> dict[str, Any]:
        """Queue and watcher counters for ``endpoint-agent status``."""
        q, w = self.queue.stats(), self.watcher.stats()
        return {
            "queued": q.queued,
            "coalesced": q.coalesced,
            "overflowed": q.overflowed,
            "needs_sweep": q.needs_sweep,
            "submitted": self.submitted,
            "roots_watched": w.roots_watched,
            "roots_missing": w.roots_missing,
            "events": w.events,
        }

    def _consume(self) -> None:
        next_check = time.monotonic() + _ROOT_CHECK
        while not self._stop.is_set():
            self.queue.wait(1.0)
            for item in self.queue.take_ready():
                self._handle(item)
            if time.monotonic() >= next_check:
                self.watcher.check_roots()
                next_check = time.monotonic() + _ROOT_CHECK

    def _handle(self, item: SettledItem) -> None:
        try:
            if item.kind is ItemKind.FILE:
                request = self.watcher.request_for(item.path)
                if request is not None:
                    self._send(request)
            elif item.kind is ItemKind.DIRECTORY:
                for request in self.watcher.walk(item.path):
                    self._send(request)
            else:
                self._request_sweep()
        except RuntimeError:  # the dispatcher is stopping
            self._stop.set()

    def _send(self, request: ScanRequest) -> None:
        self._submit(request)
        self.submitted += 1
