"""A debouncing, bounded, coalescing queue between file events and the scanner.

A file written in 1,000 small writes produces 1,000 events and must be scanned once, after it
settles. :class:`SettleQueue` keeps one entry per path; every event for a queued path pushes its
deadline back (``delay`` seconds of quiet), and :meth:`SettleQueue.take_ready` hands out the
entries whose deadline has passed. ``max_delay`` caps the wait, so a file that is written forever
is still scanned now and then.

The queue holds at most ``max_paths`` entries and :meth:`SettleQueue.offer` never blocks, never
raises and never drops silently. When it is full, an event for a new path is coalesced upward:

1. into a queued *directory* entry above it (a recursive rescan covers it), else
2. into a new directory entry for its parent, which replaces the parent's queued files (so the
   entry makes room for itself), else
3. into the *sweep* marker: one flag, outside the bound, that asks the service for a full sweep.

Every offer is counted as exactly one of ``admitted``, ``coalesced`` or ``overflowed``, and every
entry leaves as ``emitted`` or ``folded`` (replaced by a directory entry), so the counts prove that
nothing was lost. Time is an argument (``now``) everywhere, so tests need no sleeps.
"""

from __future__ import annotations

import enum
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from agent.errors import ConfigError

__all__ = ["ItemKind", "SettleQueue", "SettleSettings", "SettleStats", "SettledItem"]


class ItemKind(enum.StrEnum):
    """What a settled item asks for."""

    FILE = "file"  # scan this file
    DIRECTORY = "directory"  # rescan this directory tree (recursively)
    SWEEP = "sweep"  # events were lost or could not be queued: sweep every root


@dataclass(frozen=True, slots=True)
class SettleSettings:
    """Debounce timing and the bound of the queue."""

    delay: float = 0.75  # seconds without an event before an entry is ready
    max_delay: float = 30.0  # an entry is ready at the latest this long after its first event
    max_paths: int = 10_000  # distinct entries (files and directories) held at once

    def __post_init__(self) -> None:
        if self.delay < 0:
            raise ConfigError("settle delay must be >= 0")
        if self.max_delay < self.delay:
            raise ConfigError("settle max_delay must be >= delay")
        if self.max_paths < 1:
            raise ConfigError("settle max_paths must be >= 1")


@dataclass(frozen=True, slots=True)
class SettledItem:
    """One unit of work: a file, a directory tree, or a sweep (``path`` is then empty)."""

    path: str
    kind: ItemKind
    events: int  # events coalesced into this item


@dataclass(frozen=True, slots=True)
class SettleStats:
    """Counters of the queue since it was made.

    ``offered == admitted + coalesced + overflowed`` and
    ``queued == admitted + markers - emitted - folded`` always hold.
    """

    offered: int  # calls to offer()
    admitted: int  # offers that created an entry for their own path
    coalesced: int  # offers absorbed by a queued entry: the same path, an ancestor directory or the sweep
    overflowed: int  # offers made while full, absorbed by a new directory entry or the sweep
    markers: int  # directory entries created by overflow
    folded: int  # file entries replaced by a directory entry above them
    emitted: int  # file and directory items handed out
    sweeps: int  # sweep items handed out
    queued: int  # entries held now
    needs_sweep: bool  # a sweep is pending


def _parent(path: str) -> str:
    return os.path.dirname(path)


_COUNTERS = ("offered", "admitted", "coalesced", "overflowed", "markers", "folded", "emitted", "sweeps")


class _Entry:
    __slots__ = ("events", "first", "kind", "last")

    def __init__(self, kind: ItemKind, now: float) -> None:
        self.kind = kind
        self.first = now
        self.last = now
        self.events = 1


class SettleQueue:
    """Thread-safe, bounded, keyed by path; producers :meth:`offer`, one consumer takes."""

    def __init__(
        self, settings: SettleSettings | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings or SettleSettings()
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._entries: dict[str, _Entry] = {}
        self._by_last: OrderedDict[str, None] = OrderedDict()  # oldest last event first
        self._by_first: OrderedDict[str, None] = OrderedDict()  # oldest first event first
        self._children: dict[str, set[str]] = {}  # directory -> queued file entries directly in it
        self._dirs = 0  # directory entries held
        self._sweep: _Entry | None = None
        self._closed = False
        self._count = dict.fromkeys(_COUNTERS, 0)

    def __len__(self) -> int:
        with self._cond:
            return len(self._entries)

    def __contains__(self, path: object) -> bool:
        with self._cond:
            return path in self._entries

    def offer(self, path: str, now: float | None = None, *, directory: bool = False) -> None:
        """Record an event for ``path``; never blocks, never raises for a full queue."""
        if not path:
            raise ValueError("empty path")
        now = self._clock() if now is None else now
        kind = ItemKind.DIRECTORY if directory else ItemKind.FILE
        with self._cond:
            self._count["offered"] += 1
            if self._coalesce(path, now):
                self._count["coalesced"] += 1
            elif len(self._entries) < self.settings.max_paths or (directory and self._children.get(path)):
                self._add(path, kind, now)
                self._count["admitted"] += 1
                self._cond.notify()
            else:
                self._overflow(path, kind, now)
                self._count["overflowed"] += 1

    def request_sweep(self, now: float | None = None) -> None:
        """Ask for a sweep of every root (events were lost upstream of the queue)."""
        now = self._clock() if now is None else now
        with self._cond:
            self._mark_sweep(now)

    def take_ready(self, now: float | None = None, max_items: int = 256) -> list[SettledItem]:
        """Remove and return up to ``max_items`` settled items, oldest first."""
        now = self._clock() if now is None else now
        out: list[SettledItem] = []
        with self._cond:
            sweep = self._sweep
            if sweep is not None and max_items > 0 and self._ready(sweep, now):
                self._sweep = None
                self._count["sweeps"] += 1
                out.append(SettledItem("", ItemKind.SWEEP, sweep.events))
            while len(out) < max_items:
                path = self._next_ready(now)
                if path is None:
                    break
                entry = self._remove(path)
                self._count["emitted"] += 1
                out.append(SettledItem(path, entry.kind, entry.events))
        return out

    def next_deadline(self) -> float | None:
        """The clock time at which the next item becomes ready, or None when nothing is queued."""
        with self._cond:
            return self._next_deadline()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until an item may be ready, an entry is added, :meth:`close` or ``timeout``.

        Returns whether an item is ready now. Spurious returns are possible: loop around it.
        """
        with self._cond:
            if self._closed:
                return False
            due = self._next_deadline()
            now = self._clock()
            if due is not None and due <= now:
                return True
            limit = None if due is None else due - now
            if timeout is not None:
                limit = timeout if limit is None else min(limit, timeout)
            self._cond.wait(limit)
            due = self._next_deadline()
            return due is not None and due <= self._clock()

    def close(self) -> None:
        """Wake a waiting consumer for good (service shutdown); offers are still accepted."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def stats(self) -> SettleStats:
        """A consistent snapshot of the counters."""
        with self._cond:
            c = self._count
            return SettleStats(
                offered=c["offered"],
                admitted=c["admitted"],
                coalesced=c["coalesced"],
                overflowed=c["overflowed"],
                markers=c["markers"],
                folded=c["folded"],
                emitted=c["emitted"],
                sweeps=c["sweeps"],
                queued=len(self._entries),
                needs_sweep=self._sweep is not None,
            )

    # ------------------------------------------------------------ internals (lock held)

    def _coalesce(self, path: str, now: float) -> bool:
        """Touch the entry that covers ``path`` (itself, an ancestor directory, the sweep), if any."""
        if path in self._entries:
            self._touch(self._entries[path], now, path)
            return True
        if self._sweep is not None:
            self._touch(self._sweep, now, None)
            return True
        if self._dirs:
            parent = _parent(path)
            while parent and parent != path:
                entry = self._entries.get(parent)
                if entry is not None and entry.kind is ItemKind.DIRECTORY:
                    self._touch(entry, now, parent)
                    return True
                path, parent = parent, _parent(parent)
        return False

    def _touch(self, entry: _Entry, now: float, path: str | None) -> None:
        entry.last = max(entry.last, now)
        entry.events += 1
        if path is not None:
            self._by_last.move_to_end(path)

    def _add(self, path: str, kind: ItemKind, now: float) -> _Entry:
        entry = _Entry(kind, now)
        if kind is ItemKind.DIRECTORY:
            self._dirs += 1
            for child in list(self._children.get(path, ())):
                folded = self._remove(child)
                entry.first = min(entry.first, folded.first)
                entry.events += folded.events
                self._count["folded"] += 1
        else:
            self._children.setdefault(_parent(path), set()).add(path)
        self._entries[path] = entry
        self._by_last[path] = None
        self._by_first[path] = None
        return entry

    def _remove(self, path: str) -> _Entry:
        entry = self._entries.pop(path)
        del self._by_last[path]
        del self._by_first[path]
        if entry.kind is ItemKind.DIRECTORY:
            self._dirs -= 1
        else:
            parent = _parent(path)
            siblings = self._children[parent]
            siblings.discard(path)
            if not siblings:
                del self._children[parent]
        return entry

    def _overflow(self, path: str, kind: ItemKind, now: float) -> None:
        """Full: fold the new path into a directory entry that replaces queued files, or the sweep."""
        target = _parent(path) if kind is ItemKind.FILE else path
        if target and target != path and self._children.get(target) and target not in self._entries:
            self._add(target, ItemKind.DIRECTORY, now)
            self._count["markers"] += 1
            self._cond.notify()
            return
        self._mark_sweep(now)

    def _mark_sweep(self, now: float) -> None:
        if self._sweep is None:
            self._sweep = _Entry(ItemKind.SWEEP, now)
            self._cond.notify()
        else:
            self._touch(self._sweep, now, None)

    def _ready(self, entry: _Entry, now: float) -> bool:
        settings = self.settings
        return entry.last + settings.delay <= now or entry.first + settings.max_delay <= now

    def _next_ready(self, now: float) -> str | None:
        for order in (self._by_last, self._by_first):
            if order:
                path = next(iter(order))
                if self._ready(self._entries[path], now):
                    return path
        return None

    def _next_deadline(self) -> float | None:
        settings = self.settings
        due: list[float] = []
        if self._by_last:
            due.append(self._entries[next(iter(self._by_last))].last + settings.delay)
        if self._by_first:
            due.append(self._entries[next(iter(self._by_first))].first + settings.max_delay)
        if self._sweep is not None:
            sweep = self._sweep
            due.append(min(sweep.last + settings.delay, sweep.first + settings.max_delay))
        return min(due, default=None)
