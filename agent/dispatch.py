"""The service's scan dispatcher: many sources submit, one scan session answers.

Sources (the clamd socket, on-access file events, the program monitor, the sweep) run on their own
threads and call :meth:`Dispatcher.submit`, which returns a future. One dispatcher thread owns the
:class:`~agent.session.ScanSession` (rules, worker pool, verdict cache, outbox) and feeds it from a
:class:`Feed`: a two-level queue, so on-access, program and stream scans overtake a background sweep.

A rules reload builds the new rules to the side, lets the current session finish what it holds, and
starts the next session with the new rules from the same feed, so no submitted object is lost or
failed by a reload.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field

import structlog

from agent.config import Config
from agent.engine import IDLE, RuleSet
from agent.model import Outcome, ScanRequest, Source, Verdict, VerdictKind
from agent.session import ScanSession, SessionOptions

__all__ = ["Dispatcher", "Feed", "Priority"]

log = structlog.get_logger("endpoint-agent")

_URGENT_SOURCES = frozenset({Source.STREAM, Source.ON_ACCESS, Source.PROGRAM})


class Priority:
    """Queue levels: urgent work (a user or a client waits) goes before background work."""

    URGENT = 0
    BACKGROUND = 1


class Feed:
    """A thread-safe, two-level request queue that a :class:`ScanSession` streams from.

    Iterating yields urgent items first, then background items, then :data:`IDLE` when both are
    empty. ``wakeup`` becomes readable whenever an item is put. :meth:`end_round` makes the current
    iteration stop (for a reload); :meth:`close` ends it for good.
    """

    def __init__(self) -> None:
        self._queues: tuple[deque[ScanRequest], deque[ScanRequest]] = (deque(), deque())
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)
        self.wakeup, self._poke = socket.socketpair()
        self.wakeup.settimeout(0.0)
        self._poke.settimeout(0.0)
        self._round_over = False
        self.closed = False

    def put(self, request: ScanRequest, priority: int) -> None:
        """Queue ``request``; never blocks."""
        with self._lock:
            if self.closed:
                raise RuntimeError("the dispatcher is stopping")
            self._queues[priority].append(request)
        self.poke()

    def wait_for_room(self, limit: int, timeout: float) -> bool:
        """Block until the background queue holds fewer than ``limit`` items (sweep backpressure)."""
        with self._space:
            return self._space.wait_for(
                lambda: self.closed or len(self._queues[Priority.BACKGROUND]) < limit, timeout
            )

    def poke(self) -> None:
        """Wake the dispatcher."""
        with contextlib.suppress(BlockingIOError, OSError):
            self._poke.send(b"\0")

    def depth(self) -> int:
        """Requests queued and not yet handed to the session."""
        with self._lock:
            return len(self._queues[0]) + len(self._queues[1])

    def end_round(self) -> None:
        """Make the current iteration end, keeping the queued items for the next one."""
        with self._lock:
            self._round_over = True
        self.poke()

    def close(self) -> list[ScanRequest]:
        """Stop for good; return the requests that were still queued."""
        with self._space:
            self.closed = True
            left = [*self._queues[0], *self._queues[1]]
            self._queues[0].clear()
            self._queues[1].clear()
            self._space.notify_all()
        self.poke()
        return left

    def shutdown(self) -> None:
        """Release the wakeup sockets (after the dispatcher thread has ended)."""
        self.wakeup.close()
        self._poke.close()

    def __iter__(self) -> Iterator[ScanRequest]:
        while True:
            with contextlib.suppress(BlockingIOError, OSError):
                while self.wakeup.recv(4096):
                    pass
            with self._space:
                if self.closed or self._round_over:
                    self._round_over = False
                    return
                queue = self._queues[0] or self._queues[1]
                item = queue.popleft() if queue else IDLE
                if queue is self._queues[1]:
                    self._space.notify_all()
            yield item


@dataclass(slots=True)
class Counters:
    """What the service has done since it started, per source."""

    scanned: Counter[str] = field(default_factory=Counter)
    detections: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


class Dispatcher:
    """Owns the scan session on one thread; any thread may submit requests and get futures."""

    def __init__(
        self, config: Config, rules: RuleSet, reputation: Callable[[str], str | None] | None = None
    ) -> None:
        self.config = config
        self.rules = rules
        self._reputation = reputation
        self.feed = Feed()
        self.counters = Counters()
        self._waiting: dict[int, tuple[ScanRequest, Future[Outcome]]] = {}
        self._lock = threading.Lock()
        self._next_rules: RuleSet | None = None
        self._abort = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dispatcher", daemon=True)
        self._ready = threading.Event()
        self._startup_error: Exception | None = None

    def start(self) -> None:
        """Start the dispatcher thread and wait until its first session is up."""
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error

    @property
    def alive(self) -> bool:
        """Whether the dispatcher thread still runs (it ends only on stop or a fatal error)."""
        return self._thread.is_alive()

    def submit(self, request: ScanRequest, priority: int | None = None) -> Future[Outcome]:
        """Queue ``request``; the future resolves to its outcome. Safe from any thread."""
        future: Future[Outcome] = Future()
        level = priority if priority is not None else _priority(request)
        with self._lock:
            self._waiting[id(request)] = (request, future)
        try:
            self.feed.put(request, level)
        except RuntimeError:
            with self._lock:
                self._waiting.pop(id(request), None)
            future.set_result(_stopping(request))
        return future

    def swap_rules(self, rules: RuleSet) -> None:
        """Use ``rules`` from the next session on; the current one finishes what it holds first."""
        with self._lock:
            self._next_rules = rules
        self.feed.end_round()

    def queue_depth(self) -> int:
        """Objects waiting or being scanned."""
        with self._lock:
            return len(self._waiting)

    def stop(self, timeout: float) -> None:
        """Stop taking work, let in-flight scans finish for up to ``timeout`` s, then stop them."""
        for request in self.feed.close():
            self._resolve(request, _stopping(request))
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abort.set()
            self.feed.poke()
            self._thread.join(5.0)
        self.feed.shutdown()

    def _run(self) -> None:
        while not self.feed.closed:
            with self._lock:
                if self._next_rules is not None:
                    self.rules, self._next_rules = self._next_rules, None
            try:
                self._session_round()
            except Exception as exc:  # reported to start(), or logged; either way the thread ends
                if not self._ready.is_set():
                    self._startup_error = exc
                    self._ready.set()
                    return
                log.exception("dispatcher_failed", error=type(exc).__name__)
                self.feed.close()
        for request, future in self._drain_waiting():
            future.set_result(_stopping(request))

    def _session_round(self) -> None:
        session = ScanSession(self.config, SessionOptions(rules=self.rules, reputation=self._reputation))
        with session:
            self._ready.set()
            for request, outcome in session.stream(self.feed, self.feed.wakeup, self._abort.is_set):
                self._count(outcome)
                self._resolve(request, outcome)

    def _count(self, outcome: Outcome) -> None:
        source = outcome.request.source.value
        self.counters.scanned[source] += 1
        kind = outcome.verdict.kind
        if kind in (VerdictKind.MALICIOUS, VerdictKind.SUSPICIOUS):
            self.counters.detections[source] += 1
        elif kind is VerdictKind.ERROR:
            self.counters.errors[source] += 1

    def _resolve(self, request: ScanRequest, outcome: Outcome) -> None:
        with self._lock:
            entry = self._waiting.pop(id(request), None)
        if entry is not None and not entry[1].done():
            entry[1].set_result(outcome)

    def _drain_waiting(self) -> list[tuple[ScanRequest, Future[Outcome]]]:
        with self._lock:
            entries = list(self._waiting.values())
            self._waiting.clear()
        return entries


def _priority(request: ScanRequest) -> int:
    return Priority.URGENT if request.source in _URGENT_SOURCES else Priority.BACKGROUND


def _stopping(request: ScanRequest) -> Outcome:
    verdict = Verdict(VerdictKind.UNSCANNED, reason="the service stopped before this object was scanned")
    return Outcome(request, verdict, None, None, None, 0.0)
