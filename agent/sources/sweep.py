"""The background sweep: walk the watched roots on a schedule and scan what events may have missed.

The sweep is the lowest-priority work the service does. It feeds the dispatcher's background queue
with backpressure (it never holds more than a few hundred requests queued), keeps the agent's CPU
use within the configured budget, and waits while the machine runs on battery or is overloaded.
The persistent verdict cache answers unchanged files, so sweeping an unchanged home costs a walk
and a cache lookup per file. The time of the last complete sweep survives restarts.
"""

from __future__ import annotations

import fnmatch
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import structlog

from agent.model import Outcome, ScanRequest, Source
from agent.sources.walk import Walker, WalkError

__all__ = ["SweepSettings", "Sweeper"]

log = structlog.get_logger("endpoint-agent")
_QUEUE_ROOM = 512  # background requests queued ahead of the workers at most
_PACE_EVERY = 64


@dataclass(frozen=True, slots=True)
class SweepSettings:
    """What to sweep and how often; ``exclude`` holds glob patterns, ``exclude_dirs`` exact dirs."""

    roots: tuple[str, ...]
    interval: float
    exclude: tuple[str, ...] = ()
    exclude_extensions: tuple[str, ...] = ()
    exclude_dirs: frozenset[str] = frozenset()
    stamp_file: Path | None = None


class Sweeper:
    """A thread that sweeps the roots every ``interval`` seconds (0: only when asked)."""

    def __init__(
        self,
        settings: SweepSettings,
        submit: Callable[[ScanRequest], Future[Outcome]],
        wait_for_room: Callable[[int, float], bool],
        pace: Callable[[Callable[[], bool]], None],
        may_run: Callable[[], bool] = lambda: True,
    ) -> None:
        self.settings = settings
        self._submit, self._wait_for_room, self._pace, self._may_run = submit, wait_for_room, pace, may_run
        self._stop = threading.Event()
        self._asked = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sweep", daemon=True)
        self.sweeps = 0
        self.submitted = 0
        self.running = False
        self.on_done: Callable[[], object] | None = None  # after each complete sweep
        self.deferred = 0
        self._by_user = False

    def start(self) -> None:
        """Start the sweep thread."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the current file; the sweep resumes from the start next time."""
        self._stop.set()
        self._asked.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def request(self, *, by_user: bool = False) -> None:
        """Sweep now: events were lost, or the user asked (then not even battery or load defer it)."""
        self._by_user = self._by_user or by_user
        self._asked.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._asked.wait(self._until_due())
            if self._stop.is_set():
                return
            if not self._by_user and not self._may_run():
                log.info("sweep_deferred", reason="on battery or system busy")
                self.deferred += 1
                self._stop.wait(60.0)
                continue
            self._asked.clear()
            self._by_user = False
            self._sweep()

    def _until_due(self) -> float | None:
        interval = self.settings.interval
        if interval <= 0:
            return None
        return max(0.0, self._last() + interval - time.time())

    def _last(self) -> float:
        stamp = self.settings.stamp_file
        try:
            return stamp.stat().st_mtime if stamp is not None else 0.0
        except OSError:
            return 0.0

    def _sweep(self) -> None:
        started, count = time.monotonic(), 0
        self.running = True
        log.info("sweep_started", roots=len(self.settings.roots))
        walker = Walker(source=Source.SWEEP, exclude_dirs=self.settings.exclude_dirs)
        try:
            for item in walker.walk(self.settings.roots):
                if self._stop.is_set():
                    log.info("sweep_interrupted", submitted=count)
                    return
                if isinstance(item, WalkError) or self._excluded(item.path):
                    continue
                while not self._wait_for_room(_QUEUE_ROOM, 1.0):
                    if self._stop.is_set():
                        return
                self._submit(item)
                count += 1
                self.submitted += 1
                if count % _PACE_EVERY == 0:
                    self._pace(self._stop.is_set)
        except RuntimeError:  # the dispatcher stopped under us
            return
        finally:
            self.running = False
        self.sweeps += 1
        self._touch_stamp()
        if self.on_done is not None:
            self.on_done()
        log.info("sweep_finished", submitted=count, duration_s=round(time.monotonic() - started, 1))

    def _excluded(self, path: str) -> bool:
        return excluded(path, self.settings.exclude, self.settings.exclude_extensions)

    def _touch_stamp(self) -> None:
        stamp = self.settings.stamp_file
        if stamp is not None:
            stamp.touch(mode=0o600)
            os.utime(stamp)


def excluded(path: str, patterns: Sequence[str], extensions: Sequence[str]) -> bool:
    """Whether ``path`` matches an exclusion glob or extension (case-insensitive extension)."""
    if extensions:
        ext = os.path.splitext(path)[1].lstrip(".").lower()
        if ext and ext in {e.lstrip(".").lower() for e in extensions}:
            return True
    return any(fnmatch.fnmatch(path, p) for p in patterns)
