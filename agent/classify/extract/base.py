"""Shared pieces of the extractors: limits, robust decoding and a bounded text sink."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "ByteChunks",
    "Chunks",
    "ExtractLimits",
    "Extractor",
    "TextSink",
    "decode_text",
    "drop_surrogates",
    "write_collapsed",
]

_CP1252_FALLBACK = "extract-cp1252-latin1"
_SEP_RANK = {"": 0, " ": 1, "\t": 2, "\n": 3}
_CHUNK = 1 << 20
_SPACE = re.compile(r"\s+")


def _latin1_for_undefined(exc: UnicodeError) -> tuple[str, int]:
    """Decode the five bytes cp1252 leaves undefined as latin-1 (C1 controls) instead of failing."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return exc.object[exc.start : exc.end].decode("latin-1"), exc.end


codecs.register_error(_CP1252_FALLBACK, _latin1_for_undefined)


@dataclass(frozen=True, slots=True)
class ExtractLimits:
    """Bounds on one extraction; hitting ``max_chars`` truncates, the others bound work and memory."""

    max_chars: int = 4_000_000
    max_member_size: int = 32 * 1024 * 1024
    max_members: int = 2_000
    max_ratio: int = 200
    max_pdf_pages: int = 500


class Extractor(Protocol):
    """A format's extractor: bytes in, text of at most ``limits.max_chars`` characters out."""

    def __call__(self, data: bytes, limits: ExtractLimits, /) -> str:
        """Return the text of ``data``; raise :class:`~agent.errors.ExtractError` if it is unreadable."""


def decode_text(data: bytes) -> str:
    """Decode bytes as text: BOM (utf-8, utf-16), else utf-8, else cp1252 with latin-1 for the gaps.

    Args:
        data: the raw bytes; a multi-byte sequence cut at the very end is dropped, not a reason to
            fall back to cp1252.

    Returns:
        The decoded text; this never raises ``UnicodeDecodeError``.
    """
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", "replace")
    if data.startswith(codecs.BOM_UTF16_LE):
        return data[2 : len(data) & ~1].decode("utf-16-le", "replace")
    if data.startswith(codecs.BOM_UTF16_BE):
        return data[2 : len(data) & ~1].decode("utf-16-be", "replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.end == len(data) and exc.start >= len(data) - 3:
            try:
                return data[: exc.start].decode("utf-8")
            except UnicodeDecodeError:
                pass
    return data.decode("cp1252", _CP1252_FALLBACK)


class TextSink:
    r"""Collects text up to a character budget, with separators written only between pieces of text.

    A separator (``" "``, ``"\t"``, ``"\n"``) is held until the next text arrives; the strongest one
    wins, so paragraph and cell boundaries never pile up into runs of blank lines.
    """

    __slots__ = ("_parts", "_sep", "left")

    def __init__(self, max_chars: int) -> None:
        self._parts: list[str] = []
        self._sep = ""
        self.left = max(max_chars, 0)

    @property
    def full(self) -> bool:
        """Whether the budget is used up; extractors stop reading when it is."""
        return self.left <= 0

    def sep(self, sep: str) -> None:
        """Ask for a separator before the next text; the strongest pending one is kept."""
        if _SEP_RANK[sep] > _SEP_RANK[self._sep]:
            self._sep = sep

    def write(self, text: str) -> None:
        """Append text (after any pending separator), truncated to the remaining budget."""
        if not text or self.left <= 0:
            return
        if self._sep:
            if self._parts:
                self._append(self._sep)
            self._sep = ""
        self._append(text)

    def _append(self, text: str) -> None:
        piece = text[: self.left]
        self._parts.append(piece)
        self.left -= len(piece)

    def getvalue(self) -> str:
        """Return the text collected so far."""
        return "".join(self._parts)


class Chunks(Protocol):
    """Bytes delivered in chunks; ``truncated`` is true once a size limit cut the input short."""

    truncated: bool

    def __iter__(self) -> Iterator[bytes]: ...


class ByteChunks:
    """In-memory bytes served in 1 MiB chunks, so a parser can stop once the sink is full."""

    __slots__ = ("_data", "truncated")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.truncated = False

    def __iter__(self) -> Iterator[bytes]:
        view = memoryview(self._data)
        for start in range(0, len(view), _CHUNK):
            yield bytes(view[start : start + _CHUNK])


def drop_surrogates(text: str) -> str:
    """Join surrogate pairs and replace lone surrogates, so the text always encodes as utf-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def write_collapsed(sink: TextSink, text: str) -> None:
    """Write ``text`` with runs of whitespace as one space, keeping edge whitespace as a separator."""
    if not text:
        return
    if text[0].isspace():
        sink.sep(" ")
    sink.write(_SPACE.sub(" ", text).strip())
    if text[-1].isspace():
        sink.sep(" ")
