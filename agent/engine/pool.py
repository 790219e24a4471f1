"""A pool of scan worker processes that contains crashes and hangs.

YARA-X holds the GIL for a whole scan and its ``Scanner`` may not change threads, so scanning runs in
worker processes, each with its own scanner. Unlike ``concurrent.futures``, one dying worker does not
break the pool: the item it was on gets a failure result (``crashed`` or ``timeout``), the other items
it held go back to the queue, and a fresh worker takes its place.

Items go out in small batches and results come back in groups at most a few milliseconds old, so the
parent wakes rarely. Before each item a worker writes the item's index and start time into a small
shared-memory slot, so the parent always knows exactly which item a worker is on and since when,
even while that item's neighbours' results are still buffered.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from multiprocessing.sharedctypes import RawArray
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["IDLE", "Failure", "WorkerPool"]

Req = TypeVar("Req")
Res = TypeVar("Res")

_BATCH = 16
_BATCH_WEIGHT = 8 << 20  # a batch closes at 16 items or at this much weight (bytes), so big files spread out
_FLUSH = 0.005  # seconds a finished result may wait in the worker before it is sent
_IDLE = -1.0
_CTX = multiprocessing.get_context("spawn")
_IDLE_WAIT = 1.0  # seconds an idle streaming pool sleeps between checks when nothing wakes it
_RSS_CHECK = 0.5  # seconds between checks of the workers' memory, when a ceiling is set
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class _Idle:
    """The type of :data:`IDLE`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "IDLE"


IDLE: Any = _Idle()
"""A streaming source yields this when it has nothing right now; ``map_unordered`` yields it back."""


class _Slot(Protocol):
    """A shared ``RawArray('d', 2)``: the index of the item being scanned and its start time."""

    def __getitem__(self, i: int, /) -> float: ...
    def __setitem__(self, i: int, value: float, /) -> None: ...


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a worker gave no result for an item: ``crashed`` (with detail) or ``timeout``."""

    kind: str
    detail: str


@dataclass(slots=True)
class _Worker(Generic[Req]):
    proc: BaseProcess
    conn: multiprocessing.connection.Connection
    slot: _Slot  # [index of the item being scanned, its start on CLOCK_MONOTONIC]
    inflight: deque[tuple[int, Req]] = field(default_factory=deque)
    rss_checked: float = 0.0  # CLOCK_MONOTONIC of the last look at its memory

    def current(self) -> tuple[int, float] | None:
        """The index and start time of the item this worker is on, if it is one we await."""
        started, index = self.slot[1], int(self.slot[0])  # start first: a racing update only delays
        if index < 0 or not any(i == index for i, _ in self.inflight):
            return None
        return index, started


def _worker_main(
    conn: multiprocessing.connection.Connection, setup: Callable[[Any], Callable[[Any], Any]], slot: _Slot
) -> None:
    """Worker process: receive the payload, build the handler once, then answer batches until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    try:
        handle = setup(conn.recv())
        while (batch := conn.recv()) is not None:
            _answer(conn, handle, batch, slot)
    except (EOFError, OSError):
        return


def _answer(
    conn: multiprocessing.connection.Connection,
    handle: Callable[[Any], Any],
    batch: list[tuple[int, Any]],
    slot: _Slot,
) -> None:
    done: list[tuple[int, Any]] = []
    flushed = time.monotonic()
    for index, item in batch:
        slot[1] = time.monotonic()
        slot[0] = index
        done.append((index, handle(item)))
        if time.monotonic() - flushed > _FLUSH:
            conn.send(done)
            done, flushed = [], time.monotonic()
    slot[0] = _IDLE
    if done:
        conn.send(done)


class WorkerPool(Generic[Req, Res]):
    """Runs ``setup(payload)(item)`` for each item in ``jobs`` worker processes.

    ``setup`` must be a module-level function (it is pickled for the spawn start method). ``timeout``
    bounds the seconds one item may take before its worker is killed. With ``max_rss`` (bytes), a
    worker whose resident memory grows past it is recycled: the item it was on is retried once in a
    fresh worker, and fails with ``memory`` if it blows the ceiling again.

    ``weight`` tells what an item weighs (a file's size). Batches close at ``_BATCH_WEIGHT``, and with
    ``max_inflight`` the items out at the workers together weigh at most that much: a scan holds the
    file it works on in memory or mapped, so the files themselves never take more than the budget,
    whatever their sizes (what an archive expands to is bounded by the scan limits and ``max_rss``).
    An item heavier than the budget goes out alone, once nothing else is out; items leave in order.
    """

    def __init__(
        self,
        jobs: int,
        setup: Callable[[Any], Callable[[Req], Res]],
        payload: object,
        timeout: float,
        weight: Callable[[Req], int] | None = None,
        *,
        max_rss: int = 0,
        retire_after: float = 0.0,
        max_inflight: int = 0,
    ) -> None:
        self._jobs = max(1, jobs)
        self._max_rss = max_rss
        self._max_inflight = max_inflight
        self._retire_after = retire_after
        self._retried: set[int] = set()
        self._weight = weight or (lambda _item: 0)
        self._setup = setup
        self._payload = payload
        self._timeout = timeout
        self._workers: list[_Worker[Req]] = []
        self.restarts = 0
        self._fruitless = 0  # restarts since the last result: a worker that cannot start at all

    def __enter__(self) -> WorkerPool[Req, Res]:
        return self

    def _start(self) -> None:
        """Start the workers, on the first item only: a scan answered from the cache needs none.

        Every process is started first and then handed the payload, so the workers import in
        parallel instead of the parent waiting for each in turn.
        """
        self._workers = [self._spawn() for _ in range(self._jobs)]
        for w in self._workers:
            self._send_payload(w)

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
        slot: _Slot = RawArray("d", [_IDLE, 0.0])
        proc = _CTX.Process(target=_worker_main, args=(child, self._setup, slot), daemon=True)
        proc.start()
        child.close()
        return _Worker(proc=proc, conn=parent, slot=slot)

    def _send_payload(self, w: _Worker[Req]) -> None:
        with contextlib.suppress(OSError, ValueError):  # a worker that died at start is noticed later
            w.conn.send(self._payload)

    def map_unordered(
        self,
        items: Iterable[Req],
        wakeup: socket.socket | None = None,
        aborted: Callable[[], bool] | None = None,
    ) -> Iterator[tuple[Req, Res | Failure]]:
        """Yield ``(item, result)`` as results arrive; a failed item yields a :class:`Failure`.

        For a long-running service, ``items`` may be a streaming source: it yields :data:`IDLE` when
        it has nothing for now, and ``wakeup`` (a socket) becomes readable when it has, or when
        ``aborted()`` may have changed. The pool reads the wakeup empty each time it wakes on it.
        Each IDLE is yielded back once, so the caller can do its own housekeeping. Once ``aborted()``
        is true, every item still queued or in flight fails with ``aborted`` and the map ends.
        """
        pending: deque[tuple[int, Req]] = deque()
        source = iter(enumerate(items))
        exhausted = False
        self._retried.clear()
        idle_since = time.monotonic()
        while True:
            if aborted is not None and aborted():
                yield from self._abort(pending)
                return
            state = _refill(pending, source, self._jobs * _BATCH * 2)
            exhausted = exhausted or state is _EXHAUSTED
            if pending and not self._workers:
                self._start()
            self._dispatch(pending)
            if state is _WENT_IDLE:
                yield IDLE
            busy = [w for w in self._workers if w.inflight]
            if busy:
                idle_since = time.monotonic()
                yield from self._collect(busy, pending, wakeup)
            elif exhausted and not pending:
                return
            elif state is _WENT_IDLE and wakeup is not None:
                self._retire_if_idle(idle_since)
                multiprocessing.connection.wait([wakeup], timeout=_IDLE_WAIT)

    def _retire_if_idle(self, idle_since: float) -> None:
        """Stop the workers of a streaming pool that has had nothing to do for ``retire_after`` s.

        An idle service then holds no worker memory; the next item starts them again (about a
        second on a small machine).
        """
        if self._workers and self._retire_after and time.monotonic() - idle_since > self._retire_after:
            self.close()

    def _abort(self, pending: deque[tuple[int, Req]]) -> Iterator[tuple[Req, Failure]]:
        """Fail everything queued or in flight, and stop the workers."""
        failure = Failure("aborted", "the scan was stopped before this object was done")
        inflight = [entry for w in self._workers for entry in w.inflight]
        for w in self._workers:
            w.inflight.clear()
        self.close()
        for _, item in [*inflight, *pending]:
            yield item, failure
        pending.clear()

    def _dispatch(self, pending: deque[tuple[int, Req]]) -> None:
        held = [sum(self._weight(item) for _, item in w.inflight) for w in self._workers]
        out = sum(held)
        room = self._max_inflight - out if self._max_inflight else float("inf")
        for w, weight_held in zip(self._workers, held, strict=True):
            if not pending or len(w.inflight) >= _BATCH or weight_held >= _BATCH_WEIGHT:
                continue
            batch, weight = self._take(pending, room, alone=out == 0)
            if not batch:
                return  # the next item waits until enough of what is out comes back
            out += weight
            room -= weight
            w.inflight.extend(batch)
            with contextlib.suppress(OSError, ValueError):  # a dead worker is noticed by _collect
                w.conn.send(batch)

    def _take(
        self, pending: deque[tuple[int, Req]], room: float, *, alone: bool
    ) -> tuple[list[tuple[int, Req]], int]:
        """Take the next batch and its weight.

        A batch holds up to _BATCH items. It closes early once it weighs _BATCH_WEIGHT, or when the next
        item would not fit in ``room`` (unless it would go out ``alone``: nothing else is out).
        """
        batch: list[tuple[int, Req]] = []
        weight = 0
        while pending and len(batch) < _BATCH and weight < _BATCH_WEIGHT:
            next_weight = self._weight(pending[0][1])
            if weight + next_weight > room and (batch or not alone):
                break
            batch.append(pending.popleft())
            weight += next_weight
        return batch, weight

    def _collect(
        self, busy: list[_Worker[Req]], pending: deque[tuple[int, Req]], wakeup: socket.socket | None = None
    ) -> Iterator[tuple[Req, Res | Failure]]:
        deadlines = [self._deadline(w) for w in busy]
        wait_for = max(0.0, min(deadlines) - time.monotonic())
        if self._max_rss:
            wait_for = min(wait_for, _RSS_CHECK)
        waitables: list[Any] = [w.conn for w in busy]
        if wakeup is not None:
            waitables.append(wakeup)
        ready = multiprocessing.connection.wait(waitables, timeout=wait_for)
        if wakeup is not None and wakeup in ready:
            _drain(wakeup)  # else, with the queue full, every wait would return at once: a busy loop
        for w in busy:
            if w.conn in ready:
                yield from self._receive(w, pending)
            elif (current := w.current()) is not None and time.monotonic() > current[1] + self._timeout:
                yield from self._replace(w, pending, Failure("timeout", "scan time limit exceeded"))
            elif current is not None and self._rss_due(w) and _rss(w.proc) > self._max_rss:
                yield from self._recycle(w, pending, current[0])

    def _rss_due(self, w: _Worker[Req]) -> bool:
        """Whether to read ``w``'s memory now: with a ceiling set, every ``_RSS_CHECK`` seconds."""
        now = time.monotonic()
        if not self._max_rss or now - w.rss_checked < _RSS_CHECK:
            return False
        w.rss_checked = now
        return True

    def _recycle(
        self, w: _Worker[Req], pending: deque[tuple[int, Req]], index: int
    ) -> Iterator[tuple[Req, Res | Failure]]:
        """Replace a worker over its memory ceiling; retry its item once, then fail it."""
        failure = Failure("memory", "worker memory ceiling exceeded")
        if index in self._retried:
            yield from self._replace(w, pending, failure)
            return
        self._retried.add(index)
        yield from self._replace(w, pending, failure, retry=True)

    def _deadline(self, w: _Worker[Req]) -> float:
        current = w.current()
        return (current[1] if current else time.monotonic()) + self._timeout

    def _receive(
        self, w: _Worker[Req], pending: deque[tuple[int, Req]]
    ) -> Iterator[tuple[Req, Res | Failure]]:
        try:
            while w.inflight and w.conn.poll():
                for index, result in w.conn.recv():
                    head_index, item = w.inflight.popleft()
                    if head_index != index:  # pragma: no cover - protocol invariant
                        raise RuntimeError("worker answered out of order")
                    self._fruitless = 0
                    yield item, result
        except (EOFError, OSError):
            w.proc.join(1.0)
            yield from self._replace(w, pending, Failure("crashed", _exit_reason(w.proc)))

    def _replace(
        self, w: _Worker[Req], pending: deque[tuple[int, Req]], failure: Failure, retry: bool = False
    ) -> Iterator[tuple[Req, Failure]]:
        """Kill ``w``, fail the item it was on (or requeue it, with ``retry``), requeue the others."""
        current = w.current()
        if w.proc.is_alive():
            w.proc.kill()
        w.proc.join()
        w.conn.close()
        on = current[0] if current is not None and not retry else None
        failed = [(i, item) for i, item in w.inflight if i == on]
        pending.extendleft(reversed([(i, item) for i, item in w.inflight if i != on]))
        w.inflight.clear()
        self.restarts += 1
        self._fruitless += 1
        if self._fruitless > 3 * self._jobs:  # workers die before any item: fail the queue, stop
            failed += list(pending)
            pending.clear()
            failure = Failure("crashed", f"workers keep failing to start ({failure.detail})")
        fresh = self._spawn()
        self._send_payload(fresh)
        self._workers[self._workers.index(w)] = fresh
        for _, item in failed:
            yield item, failure


_EXHAUSTED, _WENT_IDLE, _FULL = "exhausted", "idle", "full"


def _refill(pending: deque[tuple[int, Any]], source: Iterator[tuple[int, Any]], want: int) -> str:
    """Top ``pending`` up to ``want`` items; say whether the source ran out, went idle or we are full."""
    while len(pending) < want:
        nxt = next(source, None)
        if nxt is None:
            return _EXHAUSTED
        if nxt[1] is IDLE:
            return _WENT_IDLE
        pending.append(nxt)
    return _FULL


def _drain(wakeup: socket.socket) -> None:
    """Read what woke the pool: the loop reads the source next, which is what the wakeup was for."""
    with contextlib.suppress(OSError):  # BlockingIOError once empty
        while wakeup.recv(4096, socket.MSG_DONTWAIT):
            pass


def _rss(proc: BaseProcess) -> int:
    """Resident bytes of a worker, from /proc (0 where unavailable: no ceiling is enforced there)."""
    try:
        return int(Path(f"/proc/{proc.pid}/statm").read_bytes().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


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
