"""Archive walking under limits: zip, tar (plain or compressed) and single-stream gzip, bzip2 and xz.

``members(data)`` yields each member's name and bytes. It never trusts a declared size: members are
inflated in chunks and stopped at the limits. A member that breaks a per-member limit is yielded as
a :class:`Skipped` carrying the limit's name, so the caller can report it and go on with the others.
A limit that exhausts the whole object's budget raises :class:`LimitExceeded`. A corrupt archive raises
:class:`ScanError`. Links and special files inside archives are never followed.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import mmap
import tarfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, cast

from agent.engine.limits import ScanLimits
from agent.errors import LimitExceeded, ScanError, ScanTimeout

__all__ = ["Budget", "Member", "Skipped", "archive_format", "members", "zip_entry_count"]

_CHUNK = 1 << 20


@dataclass(slots=True)
class Budget:
    """What is left of one object's limits while it and its members are scanned."""

    limits: ScanLimits
    deadline: float
    bytes_scanned: int = 0
    files: int = 0
    skipped: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, limits: ScanLimits) -> Budget:
        """Open a budget for one object, its clock starting now."""
        return cls(limits=limits, deadline=time.monotonic() + limits.max_scan_time)

    def add_bytes(self, count: int) -> None:
        """Charge ``count`` scanned bytes; raise once the object's scan size is used up."""
        self.bytes_scanned += count
        if self.bytes_scanned > self.limits.max_scan_size:
            raise LimitExceeded("MaxScanSize")

    def add_file(self) -> None:
        """Charge one archive member; raise once the object's member count is used up."""
        self.files += 1
        if self.files > self.limits.max_files:
            raise LimitExceeded("MaxFiles")

    def check_time(self) -> None:
        """Raise once the object's scan time is used up."""
        if time.monotonic() > self.deadline:
            raise ScanTimeout

    def remaining(self) -> float:
        """Seconds left for this object."""
        return max(0.0, self.deadline - time.monotonic())


@dataclass(frozen=True, slots=True)
class Member:
    """One archive member, inflated."""

    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Skipped:
    """A member that was not scanned because it broke a per-member limit (``which``)."""

    name: str
    which: str


def archive_format(head: bytes) -> str | None:
    """Return ``zip``, ``tar``, ``gzip``, ``bzip2`` or ``xz`` for archive magic, else None."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh") and len(head) > 3 and head[3:4].isdigit():
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head[257:262] == b"ustar":
        return "tar"
    return None


def members(data: bytes | mmap.mmap, fmt: str, budget: Budget, name: str = "") -> Iterator[Member | Skipped]:
    """Yield the members of an archive ``data`` of format ``fmt`` (from :func:`archive_format`)."""
    walker = {"zip": _zip_members, "tar": _tar_members}.get(fmt)
    try:
        if walker is not None:
            yield from walker(data, budget)
        else:
            yield from _stream_member(data, fmt, budget, name)
    except ScanError:
        raise
    except Exception as exc:  # the parser boundary: any parser failure is this object's error
        raise ScanError(f"corrupt {fmt} archive ({type(exc).__name__})") from exc


def zip_entry_count(data: bytes | mmap.mmap) -> int | None:
    """Entries a zip declares in its end-of-central-directory record (zip64 too), or None if unreadable.

    Read before the central directory is parsed, so a zip with a hundred thousand entries is refused
    by its count instead of being listed in memory first.
    """
    tail_start = max(0, len(data) - 65_557)
    tail = bytes(data[tail_start:])
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + 22:
        return None
    count = int.from_bytes(tail[at + 10 : at + 12], "little")
    if count != 0xFFFF:
        return count
    locator = at - 20
    if locator < 0 or tail[locator : locator + 4] != b"PK\x06\x07":
        return None
    offset = int.from_bytes(tail[locator + 8 : locator + 16], "little")
    record = bytes(data[offset : offset + 56])
    if len(record) < 40 or record[:4] != b"PK\x06\x06":
        return None
    return int.from_bytes(record[32:40], "little")


def _zip_members(data: bytes | mmap.mmap, budget: Budget) -> Iterator[Member | Skipped]:
    declared = zip_entry_count(data)
    if declared is not None and budget.files + declared > budget.limits.max_files:
        raise LimitExceeded("MaxFiles", f"{declared} entries declared")
    try:
        archive = zipfile.ZipFile(_fileobj(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise ScanError("corrupt zip archive") from exc
    for info in infos:
        if info.is_dir():
            continue
        budget.check_time()
        budget.add_file()
        if info.flag_bits & 0x1:
            yield Skipped(info.filename, "Encrypted")
            continue
        try:
            with archive.open(info) as fh:
                yield _inflate(fh, info.filename, info.compress_size, budget)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, zlib.error) as exc:
            raise ScanError("corrupt zip archive member") from exc
        except RuntimeError as exc:  # zipfile raises RuntimeError for encrypted members without the flag
            raise ScanError("unreadable zip member") from exc


def _tar_members(data: bytes | mmap.mmap, budget: Budget) -> Iterator[Member | Skipped]:
    try:
        archive = tarfile.open(fileobj=_fileobj(data), mode="r:")  # noqa: SIM115 - closed with the buffer
        for info in archive:
            budget.check_time()
            if not info.isreg():
                continue  # links, devices and FIFOs carry no data of their own; never followed
            budget.add_file()
            fh = archive.extractfile(info)
            if fh is not None:
                yield _inflate(fh, info.name, info.size or 1, budget)
    except (tarfile.TarError, OSError, ValueError, EOFError) as exc:
        raise ScanError("corrupt tar archive") from exc


def _stream_member(
    data: bytes | mmap.mmap, fmt: str, budget: Budget, name: str
) -> Iterator[Member | Skipped]:
    budget.add_file()
    member_name = _strip_suffix(name) or f"({fmt} member)"
    try:
        with _open_stream(fmt, _fileobj(data)) as fh:
            yield _inflate(fh, member_name, len(data), budget)
    except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error) as exc:
        raise ScanError(f"corrupt {fmt} stream") from exc


def _fileobj(data: bytes | mmap.mmap) -> IO[bytes]:
    """A file object over ``data`` without copying it (a mapped file is read in place)."""
    if isinstance(data, bytes):
        return io.BytesIO(data)
    return cast("IO[bytes]", io.BufferedReader(_Mapped(data), buffer_size=1 << 16))


class _Mapped(io.RawIOBase):
    """A seekable, read-only raw file over a mapping (``mmap`` lacks ``seekable()`` before 3.13)."""

    def __init__(self, mapping: mmap.mmap) -> None:
        self._map, self._pos = mapping, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._map)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:  # noqa: ANN401 - the io protocol's writable buffer
        chunk = self._map[self._pos : self._pos + len(buffer)]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


def _open_stream(fmt: str, raw: IO[bytes]) -> IO[bytes]:
    if fmt == "gzip":
        return cast("IO[bytes]", gzip.GzipFile(fileobj=raw, mode="rb"))
    if fmt == "bzip2":
        return bz2.BZ2File(raw)
    return lzma.LZMAFile(raw)


def _strip_suffix(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    for suffix in (".gz", ".tgz", ".bz2", ".tbz2", ".xz", ".txz"):
        if base.lower().endswith(suffix):
            stem = base[: -len(suffix)]
            return stem + ".tar" if suffix.startswith(".t") and suffix != ".tar" else stem
    return base


def _inflate(fh: IO[bytes], name: str, compressed: int, budget: Budget) -> Member | Skipped:
    """Read one member in chunks, stopping at the size, ratio, scan-size and time limits."""
    limits = budget.limits
    chunks: list[bytes] = []
    total = 0
    while chunk := fh.read(_CHUNK):
        total += len(chunk)
        budget.add_bytes(len(chunk))
        if total > limits.max_file_size:
            return Skipped(name, "MaxFileSize")
        if total > limits.ratio_floor and total > limits.max_compression_ratio * max(compressed, 1):
            return Skipped(name, "CompressionRatio")
        budget.check_time()
        chunks.append(chunk)
    return Member(name, b"".join(chunks))
