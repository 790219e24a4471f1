"""Where stream content waits for its scan: in memory when small, else in a 0600 spool file.

Nothing of the content outlives its scan. A spooled stream's file is unlinked as soon as the scan's
outcome arrives, on every error path, and at start-up (whatever a crash left behind).
"""

from __future__ import annotations

import os
import stat
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from agent.errors import ConfigError
from agent.model import ScanRequest, Source

__all__ = ["Held", "MemoryBudget", "StreamSink", "prepare_spool", "read_descriptor"]

_PREFIX = "stream-"
_BATCH = 1 << 20  # spool writes are batched to this size
_COPY = 1 << 20


class MemoryBudget:
    """Stream bytes held in memory by all connections together (thread-safe)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used = 0
        self._lock = threading.Lock()

    def reserve(self, size: int) -> bool:
        """Take ``size`` bytes of the budget, or return False when they do not fit."""
        with self._lock:
            if self._used + size > self._limit:
                return False
            self._used += size
            return True

    def release(self, size: int) -> None:
        """Give back ``size`` bytes."""
        with self._lock:
            self._used -= size

    @property
    def used(self) -> int:
        """Bytes held now."""
        return self._used


class Held:
    """A scan request for stream content, and the release of what holds it (memory or file)."""

    def __init__(self, request: ScanRequest, release: Callable[[], None]) -> None:
        self._request: ScanRequest | None = request
        self._release = release
        self._lock = threading.Lock()
        self._done = False

    def take(self) -> ScanRequest:
        """The request, handed over once: after this, only the backend holds the content."""
        request, self._request = self._request, None
        if request is None:
            raise RuntimeError("the held request was already taken")
        return request

    def release(self) -> None:
        """Free the memory or unlink the spool file; safe to call more than once, from any thread."""
        with self._lock:
            if self._done:
                return
            self._done = True
        self._release()


def prepare_spool(spool_dir: Path) -> None:
    """Create the spool directory 0700 (or check it), and remove what a crash left in it."""
    try:
        spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(spool_dir)
    except OSError as exc:
        raise ConfigError(f"clamd spool directory: cannot create it ({exc.strerror})") from exc
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise ConfigError("clamd spool directory: not a directory owned by the agent's user")
    if stat.S_IMODE(st.st_mode) != 0o700:
        spool_dir.chmod(0o700)
    for entry in os.scandir(spool_dir):
        if entry.name.startswith(_PREFIX):
            Path(entry.path).unlink(missing_ok=True)


def _spool_file(spool_dir: Path) -> tuple[int, str]:
    return tempfile.mkstemp(prefix=_PREFIX, dir=spool_dir)  # mkstemp creates it 0600


def _unlink(path: str) -> None:
    Path(path).unlink(missing_ok=True)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class StreamSink:
    """Collects one INSTREAM: in memory up to ``in_memory_max`` (within the budget), else spooled.

    The blocking calls (:meth:`spill`, :meth:`flush`, :meth:`close_file`) are meant for an I/O
    thread; :meth:`add` says when one is due.
    """

    def __init__(self, spool_dir: Path, in_memory_max: int, budget: MemoryBudget) -> None:
        self._spool_dir = spool_dir
        self._in_memory_max = in_memory_max
        self._budget = budget
        self._memory = bytearray()
        self._reserved = 0
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._fd = -1
        self._path = ""

    @property
    def spooled(self) -> bool:
        """The content goes to a spool file."""
        return bool(self._path)

    def add(self, data: bytes) -> bool:
        """Take ``data``; True when a blocking call is due (:meth:`spill` or :meth:`flush`)."""
        if not self._path:
            fits = len(self._memory) + len(data) <= self._in_memory_max
            if fits and self._budget.reserve(len(data)):
                self._memory += data
                self._reserved += len(data)
                return False
        self._pending.append(data)
        self._pending_size += len(data)
        return not self._path or self._pending_size >= _BATCH

    def spill(self) -> None:
        """Open the spool file if needed and write out what is pending (blocking)."""
        if not self._path:
            self._fd, self._path = _spool_file(self._spool_dir)
            self._pending.insert(0, bytes(self._memory))
            self._memory = bytearray()
            self._budget.release(self._reserved)
            self._reserved = 0
        self.flush()

    def flush(self) -> None:
        """Write what is pending to the spool file (blocking)."""
        for data in self._pending:
            _write_all(self._fd, data)
        self._pending.clear()
        self._pending_size = 0

    def finish(self) -> Held:
        """The scan request for the complete stream. Spooled: call :meth:`spill` first."""
        if self._path:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            path, self._path = self._path, ""
            request = ScanRequest(path=path, source=Source.STREAM, display="stream", act=False)
            return Held(request, lambda: _unlink(path))
        data, reserved = bytes(self._memory), self._reserved
        self._memory, self._reserved = bytearray(), 0
        request = ScanRequest(path="stream", source=Source.STREAM, data=data, display="stream")
        return Held(request, lambda: self._budget.release(reserved))

    def discard(self) -> None:
        """Drop everything collected so far (the stream was abandoned)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._path:
            _unlink(self._path)
            self._path = ""
        self._budget.release(self._reserved)
        self._memory, self._reserved = bytearray(), 0
        self._pending.clear()


def read_descriptor(
    fd: int, *, spool_dir: Path, in_memory_max: int, limit: int, budget: MemoryBudget, display: str
) -> Held | str:
    """The content of a received descriptor, held for a scan, or an error status (blocking).

    Only regular files are read (a pipe or socket could block forever), from offset 0, up to
    ``limit`` bytes. The descriptor itself is left open for the caller to close.
    """
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return "Not supported file type. ERROR"
        if st.st_size > limit:
            return "FILDES size limit exceeded. ERROR"
        if st.st_size <= in_memory_max and budget.reserve(st.st_size):
            return _read_into_memory(fd, st.st_size, budget, display)
        return _copy_to_spool(fd, spool_dir, limit, display)
    except OSError as exc:
        return f"Can't read file descriptor: {(exc.strerror or 'I/O error').lower()}. ERROR"


def _read_into_memory(fd: int, reserved: int, budget: MemoryBudget, display: str) -> Held:
    try:
        data = os.pread(fd, reserved, 0) if reserved else b""
    except OSError:
        budget.release(reserved)
        raise
    request = ScanRequest(path="stream", source=Source.STREAM, data=data, display=display)
    return Held(request, lambda: budget.release(reserved))


def _copy_to_spool(fd: int, spool_dir: Path, limit: int, display: str) -> Held | str:
    out, path = _spool_file(spool_dir)
    try:
        offset = 0
        while chunk := os.pread(fd, min(_COPY, limit + 1 - offset), offset):
            _write_all(out, chunk)
            offset += len(chunk)
            if offset > limit:
                _unlink(path)
                return "FILDES size limit exceeded. ERROR"
    except BaseException:
        _unlink(path)
        raise
    finally:
        os.close(out)
    request = ScanRequest(path=path, source=Source.STREAM, display=display, act=False)
    return Held(request, lambda: _unlink(path))
