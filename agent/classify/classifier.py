"""Classification of one object and its archive members, on the device only.

The engine calls :meth:`Classifier.visit` for the object and for each member, depth first. The
classifier sniffs each one's type, extracts text where it can, runs the personal-data detectors and
keeps only the counts. A document that was extracted as a whole (a docx, an odt) is not extracted
again member by member, so its findings are not counted twice.
"""

from __future__ import annotations

import io
import mmap
import zipfile
from collections import Counter
from typing import IO, cast

from agent.classify.detectors import detect
from agent.classify.extract import TEXT_FORMATS, ExtractLimits, extract_text
from agent.classify.kinds import HEAD_SIZE, FileType, Kind, sniff, sniff_zip
from agent.engine.archives import zip_entry_count
from agent.errors import ExtractError
from agent.model import Classification, DataClass

__all__ = ["MAX_DOCUMENT_BYTES", "Classifier"]

# Container documents (docx, pdf, ...) above this size are not extracted; policy then decides.
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
_SNIFF_MAX_ENTRIES = 10_000  # a zip declaring more is not listed just to tell its kind
_PLAIN = frozenset({"txt", "csv", "json", "md", "log", "xml", "shell", "powershell", "python", "js", "vbs"})


class Classifier:
    """Accumulates the classification of one top-level object across its members."""

    def __init__(self, personal_kinds: frozenset[str], limits: ExtractLimits, *, detect: bool = True) -> None:
        self._personal_kinds = personal_kinds
        self._limits = limits
        self._detect = detect  # False: kinds only (a first pass over a stream; see pipeline.run_item)
        self._top: FileType | None = None
        self._counts: Counter[str] = Counter()
        self._member_kinds: set[str] = set()
        self._notes: list[str] = []
        self._extracted_at: list[int] = []  # depths of containers whose text was extracted whole

    def visit(self, data: bytes | mmap.mmap, name: str, depth: int) -> None:
        """Classify one object (``depth`` 0) or archive member (``depth`` > 0)."""
        ftype = _sniff(data, name)
        if depth == 0:
            self._top = ftype
        else:
            self._member_kinds.add(ftype.kind.value)
        while self._extracted_at and self._extracted_at[-1] >= depth:
            self._extracted_at.pop()
        if not self._detect or self._extracted_at or ftype.fmt not in TEXT_FORMATS:
            return
        text = self._extract(data, ftype)
        if text:
            self._counts.update(detect(text))
        if ftype.kind is Kind.DOCUMENT:
            self._extracted_at.append(depth)

    def result(self) -> Classification:
        """Return the classification: kind of the top object, data class, per-entity counts."""
        top = self._top or FileType(Kind.OTHER, "binary")
        counts = dict(sorted(self._counts.items()))
        return Classification(
            kind=top.kind.value,
            fmt=top.fmt,
            data_class=self._data_class(top, counts),
            personal_data=counts,
            notes=tuple(self._notes),
        )

    def _data_class(self, top: FileType, counts: dict[str, int]) -> DataClass:
        if counts or top.kind.value in self._personal_kinds:
            return DataClass.PERSONAL
        if top.kind is Kind.ARCHIVE and self._member_kinds & self._personal_kinds:
            return DataClass.PERSONAL
        return DataClass.NON_PERSONAL

    def _extract(self, data: bytes | mmap.mmap, ftype: FileType) -> str:
        if ftype.fmt not in _PLAIN and len(data) > MAX_DOCUMENT_BYTES:
            self._notes.append(f"{ftype.fmt} too large for text extraction")
            return ""
        max_bytes = self._limits.max_chars * 4
        if ftype.fmt in _PLAIN and len(data) > max_bytes:
            data = data[:max_bytes]
        elif isinstance(data, mmap.mmap):
            data = data[:]
        try:
            return extract_text(data, ftype.fmt, self._limits)
        except ExtractError as exc:
            self._notes.append(f"text extraction failed: {exc}")
            return ""


def _sniff(data: bytes | mmap.mmap, name: str) -> FileType:
    head = bytes(data[:HEAD_SIZE])
    ftype = sniff(head, name)
    if ftype.fmt in ("zip", "ooxml"):
        declared = zip_entry_count(data)
        if declared is None or declared > _SNIFF_MAX_ENTRIES:  # the engine refuses it by count anyway
            return ftype
        try:
            source = io.BytesIO(data) if isinstance(data, bytes) else cast("IO[bytes]", data)
            with zipfile.ZipFile(source) as archive:
                return sniff_zip(archive)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            return ftype
    return ftype
