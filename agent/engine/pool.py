"""A pool of scan worker processes that contains crashes and hangs.

YARA-X holds the GIL for a whole scan and its ``Scanner`` may not change threads, so scanning runs in
worker processes, each with its own scanner. Unlike ``concurrent.futures``, one dying worker does not
break the pool: the item it held gets a failure result (``crashed`` or ``timeout``), the items queued
behind it go to the next worker, and a fresh worker takes its place.

Items go out in small batches (fewer round trips) and results come back one by one, so the parent
always knows which item a worker is on and since when.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any, Generic, TypeVar

__all__ = ["Failure", "WorkerPool"]

Req = TypeVar("Req")
Res = TypeVar("Res")

_BATCH = 16
_CTX = multiprocessing.get_context("spawn")


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a worker gave no result for an item: ``crashed`` (with detail) or ``timeout``."""

    kind: str
    detail: str


@dataclass(slots=True)
class _Worker(Generic[Req]):
    proc: BaseProcess
    conn: multiprocessing.connection.Connection
    inflight: deque[tuple[int, Req]] = field(default_factory=deque)
    since: float = 0.0  # when the item at the head of ``inflight`` started


def _worker_main(
    conn: multiprocessing.connection.Connection,
    setup: Callable[[Any], Callable[[Any], Any]],
    payload: Any,  # noqa: ANN401 - opaque to the pool, typed by the caller's setup()
) -> None:
    """Worker process: build the handler once, then answer batches until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    handle = setup(payload)
    while True:
        try:
            batch = conn.recv()
        except (EOFError, OSError):
            return
        if batch is None:
            return
        for index, item in batch:
            conn.send((index, handle(item)))


class WorkerPool(Generic[Req, Res]):
    """Runs ``setup(payload)(item)`` for each item in ``jobs`` worker processes.

    ``setup`` must be a module-level function (it is pickled for the spawn start method). ``timeout``
    bounds the seconds one item may take before its worker is killed.
    """

    def __init__(
        self,
        jobs: int,
        setup: Callable[[Any], Callable[[Req], Res]],
        payload: object,
        timeout: float,
    ) -> None:
        self._jobs = max(1, jobs)
        self._setup = setup
        self._payload = payload
        self._timeout = timeout
        self._workers: list[_Worker[Req]] = []
        self.restarts = 0

    def __enter__(self) -> WorkerPool[Req, Res]:
        self._workers = [self._spawn() for _ in range(self._jobs)]
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every worker: politely, then by force after a short grace."""
        for w in self._workers:
            with contextlib.suppress(OSError, ValueError):
                w.conn.send(None)
        deadline = time.monotonic() + 2.0
        for w in self._workers:
            w.proc.join(max(0.0, deadline - time.monotonic()))
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join()
            w.conn.close()
        self._workers = []

    def _spawn(self) -> _Worker[Req]:
        parent, child = _CTX.Pipe()
        proc = _CTX.Process(target=_worker_main, args=(child, self._setup, self._payload), daemon=True)
        proc.start()
        child.close()
        return _Worker(proc=proc, conn=parent)

    def map_unordered(self, items: Iterable[Req]) -> Iterator[tuple[Req, Res | Failure]]:
        """Yield ``(item, result)`` as results arrive; a failed item yields a :class:`Failure`."""
        pending: deque[tuple[int, Req]] = deque()
        source = iter(enumerate(items))
        exhausted = False
        while True:
            exhausted = exhausted or _refill(pending, source, self._jobs * _BATCH * 2)
            self._dispatch(pending)
            busy = [w for w in self._workers if w.inflight]
            if not busy:
                if exhausted and not pending:
                    return
                continue
            yield from self._collect(busy, pending)

    def _dispatch(self, pending: deque[tuple[int, Req]]) -> None:
        for w in self._workers:
            if len(w.inflight) >= _BATCH or not pending:
                continue
            batch = [pending.popleft() for _ in range(min(_BATCH, len(pending)))]
            if not w.inflight:
                w.since = time.monotonic()
            w.inflight.extend(batch)
            with contextlib.suppress(OSError, ValueError):  # a dead worker is noticed by _collect
                w.conn.send(batch)

    def _collect(
        self, busy: list[_Worker[Req]], pending: deque[tuple[int, Req]]
    ) -> Iterator[tuple[Req, Res | Failure]]:
        now = time.monotonic()
        wait_for = max(0.0, min(w.since + self._timeout - now for w in busy))
        ready = multiprocessing.connection.wait([w.conn for w in busy], timeout=wait_for)
        for w in busy:
            if w.conn in ready:
                yield from self._receive(w, pending)
            elif time.monotonic() - w.since > self._timeout:
                yield self._replace(w, pending, Failure("timeout", "scan time limit exceeded"))

    def _receive(
        self, w: _Worker[Req], pending: deque[tuple[int, Req]]
    ) -> Iterator[tuple[Req, Res | Failure]]:
        try:
            while w.conn.poll():
                index, result = w.conn.recv()
                head_index, item = w.inflight.popleft()
                if head_index != index:  # pragma: no cover - protocol invariant
                    raise RuntimeError("worker answered out of order")
                w.since = time.monotonic()
                yield item, result
                if not w.inflight:
                    return
        except (EOFError, OSError):
            w.proc.join(1.0)
            yield self._replace(w, pending, Failure("crashed", _exit_reason(w.proc)))

    def _replace(
        self, w: _Worker[Req], pending: deque[tuple[int, Req]], failure: Failure
    ) -> tuple[Req, Failure]:
        """Kill ``w``, fail its current item, requeue the rest, and start a fresh worker."""
        _index, item = w.inflight.popleft()
        pending.extendleft(reversed(w.inflight))
        w.inflight.clear()
        if w.proc.is_alive():
            w.proc.kill()
        w.proc.join()
        w.conn.close()
        self._workers[self._workers.index(w)] = self._spawn()
        self.restarts += 1
        return item, failure


def _refill(pending: deque[tuple[int, Any]], source: Iterator[tuple[int, Any]], want: int) -> bool:
    """Top ``pending`` up to ``want`` items; return True once ``source`` is exhausted."""
    while len(pending) < want:
        nxt = next(source, None)
        if nxt is None:
            return True
        pending.append(nxt)
    return False


def _exit_reason(proc: BaseProcess) -> str:
    code = proc.exitcode
    if code is None:
        return "worker stopped answering"
    if code < 0:
        try:
            return f"worker killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"worker killed by signal {-code}"
    return f"worker exited with status {code}"
