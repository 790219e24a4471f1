"""Typed, frozen values passed between the pipeline's stages.

``ScanRequest`` (what to look at) → ``ScanResult`` (what the engine found) → ``Classification``
(what kind of object, whose data) → ``Verdict`` (the decision) → a wire ``Record`` or nothing.
``Outcome`` carries all of them for rendering and persistence. Nothing here is sent anywhere: the
wire format lives in :mod:`agent.minimize.wire`.

The values are frozen msgspec structs rather than dataclasses: they cross a process boundary for
every scanned object, and a struct unpickles about ten times faster than a frozen slotted dataclass.
"""

from __future__ import annotations

import enum
import os
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from agent.minimize.wire import Record

__all__ = [
    "Classification",
    "DataClass",
    "Detection",
    "Outcome",
    "ScanRequest",
    "ScanResult",
    "Source",
    "StatKey",
    "Verdict",
    "VerdictKind",
]


class Source(enum.StrEnum):
    """Where a scan request came from."""

    ON_DEMAND = "on_demand"
    STREAM = "stream"
    ON_ACCESS = "on_access"
    PROGRAM = "program"
    SWEEP = "sweep"


class VerdictKind(enum.StrEnum):
    """The verdicts. ``unscanned`` and ``error`` are never ``clean``."""

    CLEAN = "clean"
    SUSPICIOUS = "suspicious"
    MALICIOUS = "malicious"
    UNSCANNED = "unscanned"
    ERROR = "error"


class DataClass(enum.StrEnum):
    """Whether an object holds personal data (by detector evidence or by policy)."""

    PERSONAL = "personal"
    NON_PERSONAL = "non_personal"


class StatKey(msgspec.Struct, frozen=True, gc=False):
    """Identity of a file version: the verdict-cache key, with the rules version added."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> StatKey:
        """The identity of the file version described by ``st``."""
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class ScanRequest(msgspec.Struct, frozen=True, gc=False):
    """One object to scan: a file path (local only) and, for files, the stat taken when it was found.

    A stream small enough to hold in memory carries its bytes in ``data`` instead; ``path`` then
    only names it locally (``stream``). Such requests are never cached: they have no file identity.
    """

    path: str
    source: Source = Source.ON_DEMAND
    stat: StatKey | None = None
    display: str = ""
    data: bytes | None = None
    act: bool = True  # False: report only, whatever the policy's [actions] (clamd clients expect that)


class Detection(msgspec.Struct, frozen=True, gc=False):
    """One finding. ``member`` is the archive member path (local only); ``severity`` from rule metadata."""

    name: str
    source: str
    severity: str = "high"
    member: str | None = None


class ScanResult(msgspec.Struct, frozen=True, gc=False):
    """What the engine found in one object and its archive members."""

    size: int
    sha256: str | None
    detections: tuple[Detection, ...] = ()
    errors: tuple[str, ...] = ()
    members: int = 0
    bytes_scanned: int = 0


class Classification(msgspec.Struct, frozen=True):
    """The object's kind and personal-data evidence (counts only; values never leave the worker)."""

    kind: str
    fmt: str
    data_class: DataClass
    personal_data: dict[str, int] = msgspec.field(default_factory=dict)
    notes: tuple[str, ...] = ()


class Verdict(msgspec.Struct, frozen=True, gc=False):
    """The decision on one object, with the detections and the reason it was not clean, if any."""

    kind: VerdictKind
    detections: tuple[Detection, ...] = ()
    reason: str = ""


class Outcome(msgspec.Struct, frozen=True):
    """Everything known about one scanned object, for output and persistence."""

    request: ScanRequest
    verdict: Verdict
    result: ScanResult | None
    classification: Classification | None
    record: Record | None
    duration: float
    cached: bool = False
    action: str | None = None  # what the policy did with the file: "quarantined" or "quarantine_failed"
    action_detail: str | None = None  # the quarantine item's id, or why quarantining failed
