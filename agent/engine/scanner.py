"""The per-worker scan engine: one read pass, hashes, YARA-X, hash lists, archive recursion.

An :class:`Engine` lives in one worker process and owns that process's ``yara_x.Scanner``. For each
object it reads the bytes once, computes SHA-256 (and MD5/SHA-1 only when a hash list could match
at that size), runs the rules, hands the bytes to a visitor (classification), and walks archive
members recursively under the object's :class:`~agent.engine.archives.Budget`.
"""

from __future__ import annotations

import hashlib
import math
import mmap
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import yara_x

from agent.engine.archives import Budget, Member, archive_format, members
from agent.engine.limits import ScanLimits
from agent.engine.rules import RuleSet
from agent.errors import LimitExceeded, ScanError, ScanTimeout
from agent.model import Detection, ScanResult

__all__ = ["MMAP_THRESHOLD", "Engine", "Visitor", "limit_detection"]

# Objects up to this size are read into memory; larger ones are memory-mapped (page cache, no copy).
MMAP_THRESHOLD = 16 * 1024 * 1024
_PROC_FD = "/proc/self/fd"

# visit(data, name, depth): called once per scanned object and member, for classification.
Visitor = Callable[[bytes | mmap.mmap, str, int], None]


def limit_detection(which: str, member: str | None = None) -> Detection:
    """Return the detection recorded when limit ``which`` stops part of a scan."""
    return Detection(name=f"Limits.Exceeded.{which}", source="limit", severity="limit", member=member)


@dataclass(slots=True)
class _Walk:
    budget: Budget
    visit: Visitor
    found: list[Detection] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Engine:
    """Scans objects with one set of compiled rules, in the thread that created it."""

    def __init__(self, rules: RuleSet, limits: ScanLimits) -> None:
        self._scanner = rules.scanner()
        self._hashes = rules.hashes
        self._limits = limits
        self._member_global = ""

    @property
    def limits(self) -> ScanLimits:
        """The limits this engine applies."""
        return self._limits

    def scan_fd(self, fd: int, size: int, name: str, visit: Visitor) -> ScanResult:
        """Scan an open regular file of ``size`` bytes (its stat size when opened)."""
        if size > self._limits.max_file_size:
            raise LimitExceeded("MaxFileSize")
        if size > MMAP_THRESHOLD and os.path.isdir(_PROC_FD):
            # Large files are never copied into memory: SHA-256 streams through a small buffer, YARA-X
            # maps the same open file through /proc (no path race), and the rest (type, text, archive
            # directory) reads only the parts it needs through a read-only mapping.
            sha256 = _hash_fd(fd, size)
            with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as mapped:
                return self._scan_top(mapped, name, visit, f"{_PROC_FD}/{fd}", sha256)
        data = _read_exactly(fd, size)
        return self._scan_top(data, name, visit, None, hashlib.sha256(data).hexdigest())

    def scan_bytes(self, data: bytes, name: str, visit: Visitor) -> ScanResult:
        """Scan an object already in memory (a stream)."""
        if len(data) > self._limits.max_file_size:
            raise LimitExceeded("MaxFileSize")
        return self._scan_top(data, name, visit, None, hashlib.sha256(data).hexdigest())

    def _scan_top(
        self, data: bytes | mmap.mmap, name: str, visit: Visitor, fd_path: str | None, sha256: str
    ) -> ScanResult:
        walk = _Walk(budget=Budget.start(self._limits), visit=visit)
        try:
            walk.budget.add_bytes(len(data))
            self._object(data, walk, name=name, member=None, depth=0, sha256=sha256, fd_path=fd_path)
        except LimitExceeded as exc:
            walk.found.append(limit_detection(exc.which))
        return ScanResult(
            size=len(data),
            sha256=sha256,
            detections=tuple(walk.found),
            errors=tuple(walk.errors),
            members=walk.budget.files,
            bytes_scanned=walk.budget.bytes_scanned,
        )

    def _object(
        self,
        data: bytes | mmap.mmap,
        walk: _Walk,
        *,
        name: str,
        member: str | None,
        depth: int,
        sha256: str,
        fd_path: str | None = None,
    ) -> None:
        walk.found.extend(self._hash_hits(data, sha256, member))
        walk.found.extend(self._rule_hits(data, member, walk.budget, fd_path))
        walk.visit(data, member or name, depth)
        fmt = archive_format(data[:512])
        if fmt is None:
            return
        if depth >= self._limits.max_recursion:
            walk.found.append(limit_detection("MaxRecursion", member))
            return
        self._members(data, walk, fmt=fmt, name=name, member=member, depth=depth)

    def _members(
        self, data: bytes | mmap.mmap, walk: _Walk, *, fmt: str, name: str, member: str | None, depth: int
    ) -> None:
        try:
            for item in members(data, fmt, walk.budget, member or name):
                path = f"{member}/{item.name}" if member else item.name
                if isinstance(item, Member):
                    digest = hashlib.sha256(item.data).hexdigest()
                    self._object(item.data, walk, name=name, member=path, depth=depth + 1, sha256=digest)
                else:
                    walk.found.append(limit_detection(item.which, path))
        except LimitExceeded:
            raise
        except ScanError as exc:
            walk.errors.append(str(exc))

    def _hash_hits(self, data: bytes | mmap.mmap, sha256: str, member: str | None) -> list[Detection]:
        size = len(data)
        names = self._hashes.lookup("sha256", sha256, size)
        for algo in ("md5", "sha1"):
            if self._hashes.wants(algo, size):
                names += self._hashes.lookup(
                    algo, hashlib.new(algo, data, usedforsecurity=False).hexdigest(), size
                )
        return [Detection(name=n, source="hash", severity="high", member=member) for n in names]

    def _rule_hits(
        self, data: bytes | mmap.mmap, member: str | None, budget: Budget, fd_path: str | None
    ) -> list[Detection]:
        self._set_member(member or "")
        self._scanner.set_timeout(max(1, math.ceil(budget.remaining())))
        try:
            if fd_path is None:
                results = self._scanner.scan(data if isinstance(data, bytes) else data[:])
            else:
                results = self._scanner.scan_file(fd_path)
            found = [_detection(rule, member) for rule in results.matching_rules]
            if fd_path is not None:
                # The scanner keeps the file it scanned mapped until its next scan: let go of it now,
                # or an idle worker holds tens of megabytes of page cache as its own memory.
                self._scanner.scan(b"")
        except yara_x.TimeoutError as exc:
            raise ScanTimeout from exc
        except yara_x.ScanError as exc:
            raise ScanError("rule engine failed on this object") from exc
        return found

    def _set_member(self, value: str) -> None:
        if value != self._member_global:
            self._scanner.set_global("member_name", value)
            self._member_global = value


def _detection(rule: yara_x.Rule, member: str | None) -> Detection:
    meta = dict(rule.metadata)
    severity = str(meta.get("severity", "high")).lower()
    return Detection(name=rule.identifier, source="yara", severity=severity, member=member)


def _hash_fd(fd: int, size: int) -> str:
    """SHA-256 of the first ``size`` bytes of an open file, through a 1 MiB buffer."""
    digest = hashlib.sha256()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    offset = 0
    while offset < size:
        n = os.preadv(fd, [view[: min(len(buf), size - offset)]], offset)
        if n == 0:
            raise ScanError("file shrank while being read")
        digest.update(view[:n])
        offset += n
    return digest.hexdigest()


def _read_exactly(fd: int, size: int) -> bytes:
    """Read a file of ``size`` bytes in one pass; a file that shrank or grew meanwhile is an error."""
    data = os.read(fd, size + 1)
    while len(data) < size:
        more = os.read(fd, size + 1 - len(data))
        if not more:
            raise ScanError("file shrank while being read")
        data += more
    if len(data) > size:
        raise ScanError("file grew while being read")
    return data
