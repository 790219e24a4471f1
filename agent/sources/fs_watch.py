"""On-access source: watch the configured roots with watchdog and feed a :class:`SettleQueue`.

This is the only module that imports watchdog. The shape is watchdog's own: emitters (one thread per
root, inotify on Linux) → watchdog's event queue → one dispatcher thread that calls our handler,
and the handler only *enqueues*: it filters by path string and calls ``SettleQueue.offer``, which
never blocks. Scanning happens elsewhere, on what the queue hands out once a file has settled.

What triggers a scan of a file: close-after-write (``FileClosedEvent``, inotify ``IN_CLOSE_WRITE``),
creation and modification (a fallback for writers that keep a file open; the settle queue's
``max_delay`` bounds how long such a file waits), and a move into a root (the destination path).
A directory created in or moved into a root is queued as a directory rescan. Reads, opens and
deletions are not watched at all (the inotify mask leaves them out), so reading a home costs nothing.

Exclusions: the always-excluded paths (the state dir and its temp files; exact path or anything
under it), ``exclude_globs`` (``fnmatch`` on the full, resolved path: ``*/.cache/*`` excludes a
subtree; a directory is excluded when its path plus ``/`` matches), ``exclude_extensions``
(case-insensitive), and ``max_size``. Size needs a stat, so it is checked when the consumer turns a
settled path into a request (:meth:`FileWatcher.request_for`), not in the handler. Symlinks are
never followed: watchdog does not descend into linked directories, and ``request_for`` uses
``lstat`` and turns down anything but a regular file.

Roots are resolved (``realpath``) when they are scheduled. Scheduling walks the root's directories
once more to log, by count, the subtrees that cannot be listed (``watch_subtree_denied``: they are
not watched either) and a tree with more directories than the inotify watch limit
(``watch_limit_exceeded``); the sweep covers both. :meth:`FileWatcher.check_roots`, called
periodically by the service, notices a root that was removed, replaced or that never existed,
and (re)schedules it as soon as it is back, queueing a rescan of the whole root for what happened
while it was not watched. Logs name a root by its index in the configured list, never by path.

When the kernel's inotify queue overflows, watchdog logs a warning and rebuilds its watches but
events are gone: a bridge on watchdog's stdlib logger turns that into ``SettleQueue.request_sweep``
and a path-free ``watch_events_lost`` event. The bridge also keeps watchdog's own log records,
which carry raw paths in their arguments, away from the root logger.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import re
import stat
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from agent.errors import ConfigError
from agent.logs import get_logger
from agent.model import ScanRequest, Source, StatKey
from agent.sources.settle import SettleQueue
from agent.sources.walk import Walker, WalkError

__all__ = ["FileWatcher", "WatchSettings", "WatchStats"]

_log = get_logger()

# The events we act on; the list also sets the inotify mask (no IN_OPEN, IN_ACCESS, IN_CLOSE_NOWRITE).
_EVENT_FILTER: list[type[FileSystemEvent]] = [
    FileClosedEvent,
    FileCreatedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirMovedEvent,
]
_WATCH_LIMIT = "/proc/sys/fs/inotify/max_user_watches"


@dataclass(frozen=True, slots=True)
class WatchSettings:
    """What to watch and what to leave out."""

    exclude_globs: tuple[str, ...] = ()  # fnmatch patterns on the full path of a file
    # unfinished downloads (scanned under their final name when renamed) and editor swap files
    exclude_extensions: tuple[str, ...] = (".part", ".crdownload", ".swp")
    max_size: int | None = None  # larger files are not scanned on access; None: the scan limits decide
    on_modify: bool = True  # also react to writes without a close (files kept open); bounded by max_delay

    def __post_init__(self) -> None:
        if self.max_size is not None and self.max_size < 0:
            raise ConfigError("watch max_size must be >= 0")


@dataclass(frozen=True, slots=True)
class WatchStats:
    """Counters of a watcher; ``skipped`` counts settled paths not turned into requests, by reason."""

    roots_watched: int
    roots_missing: int
    events: int  # events offered to the queue
    ignored: int  # events dropped by an exclusion
    skipped: dict[str, int]  # vanished, not_regular, too_large, excluded, walk_error


@dataclass(slots=True)
class _Root:
    index: int
    path: str
    watch: ObservedWatch | None = None
    ident: tuple[int, int] | None = None
    ever_watched: bool = False
    reported_missing: bool = False


class _Matcher:
    """Decides from the path string alone whether a path is excluded."""

    def __init__(self, settings: WatchSettings, always_exclude: Sequence[str]) -> None:
        prefixes = {os.path.abspath(p) for p in always_exclude} | {
            os.path.realpath(p) for p in always_exclude
        }
        self.prefixes = tuple(sorted(prefixes))
        self._under = tuple(p.rstrip(os.sep) + os.sep for p in self.prefixes)
        self._extensions = tuple(
            ("." + e.lstrip(".")).lower() for e in settings.exclude_extensions if e.strip(".")
        )
        globs = "|".join(f"(?:{fnmatch.translate(g)})" for g in settings.exclude_globs)
        self._globs = re.compile(globs) if globs else None

    def excluded(self, path: str) -> bool:
        if path in self.prefixes or path.startswith(self._under):
            return True
        if self._extensions and path.lower().endswith(self._extensions):
            return True
        return self._globs is not None and self._globs.match(path) is not None


class _Handler(FileSystemEventHandler):
    """Runs in watchdog's dispatcher thread: filter by string and enqueue, nothing else."""

    def __init__(self, queue: SettleQueue, matcher: _Matcher, on_modify: bool) -> None:
        self._queue = queue
        self._matcher = matcher
        self._on_modify = on_modify
        self.events = 0
        self.ignored = 0

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            self._handle(event)
        except Exception as exc:  # noqa: BLE001 - a handler error must not kill watchdog's dispatcher thread
            _log.error("watch_event_failed", error=type(exc).__name__)
            self._queue.request_sweep()

    def _handle(self, event: FileSystemEvent) -> None:
        if isinstance(event, FileMovedEvent | DirMovedEvent):
            path = os.fsdecode(event.dest_path)
        elif isinstance(event, FileModifiedEvent) and not self._on_modify:
            return
        else:
            path = os.fsdecode(event.src_path)
        if not path:
            return
        directory = event.is_directory
        if self._matcher.excluded(path) or (directory and self._matcher.excluded(path + os.sep)):
            self.ignored += 1
            return
        self.events += 1
        self._queue.offer(path, directory=directory)


class _LibraryLogBridge(logging.Handler):
    """Turns watchdog's stdlib warnings into path-free events; an overflow asks for a sweep."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.listeners: set[Callable[[], None]] = set()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.msg if isinstance(record.msg, str) and record.args else ""  # args hold the paths
        if "overflow" in str(record.msg).lower():
            _log.warning("watch_events_lost", reason="inotify queue overflow", action="sweep")
            for listener in list(self.listeners):
                listener()
        else:
            _log.warning("watch_library_warning", source=record.name, message=message)


_BRIDGE = _LibraryLogBridge()


def _install_bridge() -> None:
    library = logging.getLogger("watchdog")
    if _BRIDGE not in library.handlers:
        library.addHandler(_BRIDGE)
    library.propagate = False


def _reason(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()


class FileWatcher:
    """Watches ``roots`` recursively and offers changed paths to ``queue``.

    Threads (all watchdog's, all daemon, all joined by :meth:`stop`): one dispatcher, one inotify
    reader, and one emitter per watched root.
    """

    def __init__(
        self,
        roots: Sequence[str],
        settings: WatchSettings,
        queue: SettleQueue,
        *,
        always_exclude: Sequence[str] = (),
    ) -> None:
        self.settings = settings
        self.queue = queue
        self._matcher = _Matcher(settings, always_exclude)
        self._roots = [_Root(i, os.path.abspath(r)) for i, r in enumerate(roots)]
        self._handler = _Handler(queue, self._matcher, settings.on_modify)
        self._filter = _EVENT_FILTER + ([FileModifiedEvent] if settings.on_modify else [])
        self._observer: BaseObserver | None = None
        self._lock = threading.RLock()
        self._skipped: Counter[str] = Counter()
        self._skip_lock = threading.Lock()

    def start(self) -> None:
        """Start the observer and schedule every root that exists; missing ones are retried later."""
        with self._lock:
            if self._observer is not None:
                return
            _install_bridge()
            _BRIDGE.listeners.add(self.queue.request_sweep)
            observer = Observer()
            observer.name = "fs-watch"
            observer.start()
            self._observer = observer
            self.check_roots()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching and join every watchdog thread."""
        with self._lock:
            observer, self._observer = self._observer, None
            _BRIDGE.listeners.discard(self.queue.request_sweep)
            for root in self._roots:
                root.watch = None
                root.ident = None
            if observer is not None:
                observer.stop()
                observer.join(timeout)

    def check_roots(self) -> None:
        """Notice lost, replaced or new roots and (re)schedule them; call this periodically."""
        with self._lock:
            observer = self._observer
            if observer is None:
                return
            if not observer.is_alive():
                _log.error("watch_observer_died")
                self.stop()
                self.start()
                self.queue.request_sweep()
                return
            for root in self._roots:
                if root.watch is not None and not self._intact(observer, root):
                    _log.warning("watch_root_lost", root=root.index)
                    with contextlib.suppress(KeyError):
                        observer.unschedule(root.watch)
                    root.watch = None
                if root.watch is None:
                    self._schedule(observer, root)

    def excluded(self, path: str) -> bool:
        """Whether ``path`` is left out (always-excluded, glob or extension); a string test only."""
        return self._matcher.excluded(path)

    def request_for(self, path: str) -> ScanRequest | None:
        """The scan request for a settled file path, or None (counted) when it should not be scanned.

        ``lstat``: a path that vanished, is a symlink or not a regular file, or is over ``max_size``
        gives None. Scanning a file that is gone would only report an error for a temp file.
        """
        if self._matcher.excluded(path):
            self._skip("excluded")
            return None
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self._skip("vanished")
            _log.debug("watch_file_vanished")
            return None
        except OSError as exc:
            self._skip(_reason(exc))
            return None
        return self._admit(ScanRequest(path=path, source=Source.ON_ACCESS, stat=StatKey.of(st)), st.st_mode)

    def walk(self, directory: str) -> Iterator[ScanRequest]:
        """Requests for every file under ``directory`` (a settled directory rescan), exclusions applied."""
        if self._matcher.excluded(directory):
            return
        walker = Walker(source=Source.ON_ACCESS, exclude_dirs=frozenset(self._matcher.prefixes))
        for found in walker.walk([directory]):
            if isinstance(found, WalkError):
                self._skip("walk_error")
            elif not self._matcher.excluded(found.path):
                request = self._admit(found, stat.S_IFREG)
                if request is not None:
                    yield request
            else:
                self._skip("excluded")

    def stats(self) -> WatchStats:
        """A snapshot of the counters."""
        with self._lock:
            watched = sum(root.watch is not None for root in self._roots)
        with self._skip_lock:
            skipped = dict(self._skipped)
        return WatchStats(
            roots_watched=watched,
            roots_missing=len(self._roots) - watched,
            events=self._handler.events,
            ignored=self._handler.ignored,
            skipped=skipped,
        )

    # ------------------------------------------------------------ internals

    def _skip(self, reason: str) -> None:
        with self._skip_lock:
            self._skipped[reason] += 1

    def _admit(self, request: ScanRequest, mode: int) -> ScanRequest | None:
        if not stat.S_ISREG(mode):
            self._skip("not_regular")
            return None
        limit = self.settings.max_size
        if limit is not None and request.stat is not None and request.stat.size > limit:
            self._skip("too_large")
            return None
        return request

    def _intact(self, observer: BaseObserver, root: _Root) -> bool:
        """The root's emitter still runs and the root path is still the directory it watches."""
        if not any(e.watch == root.watch and e.is_alive() for e in observer.emitters):
            return False
        try:
            st = os.stat(root.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == root.ident

    def _schedule(self, observer: BaseObserver, root: _Root) -> None:
        try:
            resolved = os.path.realpath(root.path)
            st = os.stat(resolved)
            if not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(20, "Not a directory")
            root.watch = observer.schedule(
                self._handler, resolved, recursive=True, event_filter=self._filter, follow_symlink=False
            )
        except OSError as exc:
            if not root.reported_missing:
                _log.warning("watch_root_unavailable", root=root.index, reason=_reason(exc))
                root.reported_missing = True
            return
        root.ident = (st.st_dev, st.st_ino)
        _log.info("watch_root_restored" if root.ever_watched else "watch_root_started", root=root.index)
        if root.ever_watched or root.reported_missing:
            self.queue.offer(resolved, directory=True)  # what happened while it was not watched
        root.ever_watched = True
        root.reported_missing = False
        self._survey(root, resolved)

    def _survey(self, root: _Root, resolved: str) -> None:
        """Log what the watch cannot cover: unreadable subtrees, more directories than inotify allows."""
        directories, denied = _count_directories(resolved)
        if denied:
            _log.warning("watch_subtree_denied", root=root.index, directories=denied)
        limit = _watch_limit()
        if limit is not None and directories > limit:
            _log.warning("watch_limit_exceeded", root=root.index, directories=directories, limit=limit)


def _count_directories(root: str) -> tuple[int, int]:
    """Directories under ``root`` (symlinks not followed), and how many of them could not be listed."""
    denied = 0

    def failed(exc: OSError) -> None:
        nonlocal denied
        if isinstance(exc, PermissionError):
            denied += 1

    return sum(1 for _ in os.walk(root, onerror=failed)), denied


def _watch_limit() -> int | None:
    """The per-user inotify watch limit (Linux), if it can be read."""
    try:
        return int(Path(_WATCH_LIMIT).read_bytes())
    except (OSError, ValueError):
        return None
