"""Program source: notice new processes by polling psutil and ask for a scan of their images.

The service calls :meth:`ProgramMonitor.poll` every ``interval`` seconds. A process is new when its
(pid, create time) was not running at the previous poll, so the first poll reports every program
already running. For each new process the executable image is located and stat'ed, and one
:class:`~agent.model.ScanRequest` is returned per distinct image (device, inode, mtime): an image
returned once is not returned again until :meth:`ProgramMonitor.forget` (called on a rules reload)
or until it falls out of the bounded memory of images. The rules version is the verdict cache's
business, not ours.

Only the image goes into a request. The command line, user, environment, working directory and
parent chain are never read here, so they can reach neither a request nor a log line. Nothing is
done to any process: this source only reports.

Deleted or replaced images. The kernel still holds the running image when its file was deleted
(a package upgrade, or malware that removes itself), and ``/proc/<pid>/exe`` opens it. psutil
strips the `` (deleted)`` suffix and then names a path that is gone or holds a *different* file,
so the path is trusted only when it has the running image's device and inode. Otherwise the image
is read through ``/proc/<pid>/exe`` into the request's ``data`` (up to ``max_inline_image`` bytes,
with no ``stat``: such a request has no file identity to cache under), with the former path as its
local name. Polling misses processes that live shorter than ``interval``; that is the price of
polling without privileges (fanotify or audit would need them).
"""

from __future__ import annotations

import os
import stat
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import psutil

from agent.errors import ConfigError
from agent.logs import get_logger
from agent.model import ScanRequest, Source, StatKey

__all__ = ["ProgramMonitor", "ProgramSettings", "ProgramStats"]

_log = get_logger()
_DELETED = " (deleted)"


@dataclass(frozen=True, slots=True)
class ProgramSettings:
    """How often to poll and how much to remember."""

    interval: float = 2.0  # seconds between polls (the service's timer)
    max_images: int = 4096  # distinct images remembered as already reported (oldest forgotten first)
    max_inline_image: int = 64 * 1024 * 1024  # largest deleted image read into memory for a scan

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ConfigError("programs interval must be > 0")
        if self.max_images < 1:
            raise ConfigError("programs max_images must be >= 1")
        if self.max_inline_image < 0:
            raise ConfigError("programs max_inline_image must be >= 0")


@dataclass(frozen=True, slots=True)
class ProgramStats:
    """Counters since the monitor was made."""

    polls: int
    new_processes: int  # processes seen for the first time
    reported: int  # scan requests returned
    deleted: int  # of which for a deleted or replaced image, read through /proc
    vanished: int  # processes gone before their image could be looked at
    denied: int  # processes whose image we may not see (another user's, without privileges)
    skipped: int  # images not scanned: kernel threads, too large to read, not a regular file


@dataclass(frozen=True, slots=True)
class _Image:
    path: str  # where the image is (or was) on disk; local only
    st: os.stat_result
    deleted: bool  # only reachable through /proc/<pid>/exe


class _Gone(Exception):
    """The process ended while we looked at it."""


class ProgramMonitor:
    """Turns newly started processes into scan requests for their executable images."""

    def __init__(self, settings: ProgramSettings | None = None, *, proc_root: str = "/proc") -> None:
        self.settings = settings or ProgramSettings()
        self._proc_root = proc_root
        self._alive: set[tuple[int, float]] = set()
        self._images: OrderedDict[tuple[int, int, int], None] = OrderedDict()
        self._count = dict.fromkeys(
            ("polls", "new_processes", "reported", "deleted", "vanished", "denied", "skipped"), 0
        )
        self._lock = threading.Lock()  # poll() runs on the service's timer, forget() on a reload

    def poll(self) -> list[ScanRequest]:
        """One request per image of a process started since the last poll and not reported before."""
        with self._lock:
            return self._poll()

    def forget(self) -> None:
        """Forget every process and image seen, so the next poll reports all running images again."""
        with self._lock:
            self._alive.clear()
            self._images.clear()

    def stats(self) -> ProgramStats:
        """A snapshot of the counters."""
        with self._lock:
            return ProgramStats(**self._count)

    # ------------------------------------------------------------ internals

    def _poll(self) -> list[ScanRequest]:
        self._count["polls"] += 1
        current: set[tuple[int, float]] = set()
        fresh: list[psutil.Process] = []
        for proc in psutil.process_iter():
            try:
                key = (proc.pid, proc.create_time())
            except psutil.Error:
                continue
            current.add(key)
            if key not in self._alive:
                fresh.append(proc)
        self._alive = current
        self._count["new_processes"] += len(fresh)
        requests = [r for r in map(self._request_for, fresh) if r is not None]
        self._count["reported"] += len(requests)
        return requests

    def _request_for(self, proc: psutil.Process) -> ScanRequest | None:
        try:
            image = self._locate(proc)
        except _Gone:
            self._count["vanished"] += 1
            return None
        except psutil.AccessDenied:
            self._count["denied"] += 1
            return None
        if image is None:
            self._count["skipped"] += 1
            return None
        if not self._remember(image.st):
            return None
        if not image.deleted:
            return ScanRequest(path=image.path, source=Source.PROGRAM, stat=StatKey.of(image.st))
        return self._inline(proc.pid, image)

    def _locate(self, proc: psutil.Process) -> _Image | None:
        """The running image of ``proc``; None for kernel threads and images that are not files."""
        try:
            exe = proc.exe()
        except psutil.NoSuchProcess as exc:  # ZombieProcess included: nothing runs any more
            raise _Gone from exc
        if not exe:
            return None  # a kernel thread, or an image psutil cannot name
        path = exe.removesuffix(_DELETED)
        running = self._running_stat(proc.pid)
        try:
            st = os.lstat(path)
        except OSError:
            st = None
        same = st is not None and (running is None or _same_file(running, st))
        if st is not None and same and stat.S_ISREG(st.st_mode):
            return _Image(path, st, deleted=False)
        if running is None or not stat.S_ISREG(running.st_mode):
            return None
        return _Image(path, running, deleted=True)

    def _running_stat(self, pid: int) -> os.stat_result | None:
        """stat() of the image the kernel runs for ``pid`` (follows /proc's link even to a deleted file)."""
        try:
            return os.stat(f"{self._proc_root}/{pid}/exe")
        except (FileNotFoundError, ProcessLookupError) as exc:
            if os.path.isdir(f"{self._proc_root}/self"):
                raise _Gone from exc
            return None  # no procfs here: trust the path
        except PermissionError as exc:
            raise psutil.AccessDenied(pid) from exc
        except OSError:
            return None

    def _remember(self, st: os.stat_result) -> bool:
        """Record the image; False when it was reported already."""
        key = (st.st_dev, st.st_ino, st.st_mtime_ns)
        if key in self._images:
            self._images.move_to_end(key)
            return False
        self._images[key] = None
        while len(self._images) > self.settings.max_images:
            self._images.popitem(last=False)
        return True

    def _inline(self, pid: int, image: _Image) -> ScanRequest | None:
        """A request carrying the bytes of a deleted or replaced image, read through /proc."""
        limit = self.settings.max_inline_image
        try:
            data = _read_image(Path(self._proc_root, str(pid), "exe"), image.st, limit)
        except (FileNotFoundError, ProcessLookupError):
            data = None
        except OSError:
            self._count["denied"] += 1
            return None
        if data is None:  # gone, or the pid now runs something else
            self._count["vanished"] += 1
            return None
        if len(data) > limit:
            self._count["skipped"] += 1
            _log.warning("program_image_skipped", reason="deleted image larger than max_inline_image")
            return None
        self._count["deleted"] += 1
        _log.info("program_image_deleted", size=len(data))
        return ScanRequest(path=image.path, source=Source.PROGRAM, data=data)


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _read_image(path: Path, expected: os.stat_result, limit: int) -> bytes | None:
    """Up to ``limit + 1`` bytes of ``path`` if it is still the file ``expected`` describes."""
    with path.open("rb") as f:
        if not _same_file(os.fstat(f.fileno()), expected):
            return None
        return f.read(limit + 1)
