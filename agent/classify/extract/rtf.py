"""RTF: a control-word stripper that keeps the body text and drops fonts, pictures and metadata."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from agent.classify.extract.base import TextSink, drop_surrogates

if TYPE_CHECKING:
    from agent.classify.extract.base import ExtractLimits

__all__ = ["extract_rtf"]

_TOKEN = re.compile(
    rb"\\([a-zA-Z]{1,32})(-?\d{1,10})? ?"  # 1, 2: control word and its parameter
    rb"|\\'([0-9a-fA-F]{2})"  # 3: a byte in the document code page
    rb"|\\([^a-zA-Z'])"  # 4: control symbol
    rb"|([{}])"  # 5: group
    rb"|([^\\{}\r\n]+)"  # 6: text
    rb"|[\r\n]+|\\",  # ignorable line breaks, a lone trailing backslash
)
# Destinations whose content is not document text.
_SKIP = frozenset(
    {
        "fonttbl", "colortbl", "stylesheet", "info", "pict", "object", "objdata", "themedata",
        "colorschememapping", "datastore", "latentstyles", "listtable", "listoverridetable", "rsidtbl",
        "generator", "xmlnstbl", "mmathPr", "fldinst", "pgdsctbl", "filetbl", "revtbl", "nonshppict",
        "userprops", "docvar", "xmlopen", "bkmkstart", "bkmkend", "header_ignore", "fontemb", "shpinst",
    }
)  # fmt: skip
_BREAKS = {"par": "\n", "line": "\n", "sect": "\n", "page": "\n", "row": "\n", "tab": "\t", "cell": "\t"}
_CHARS = {
    "emdash": "\u2014", "endash": "\u2013", "bullet": "\u2022", "lquote": "\u2018", "rquote": "\u2019",
    "ldblquote": "\u201c", "rdblquote": "\u201d", "emspace": " ", "enspace": " ", "qmspace": " ",
}  # fmt: skip
_SYMBOLS = {b"~": " ", b"_": "-", b"\\": "\\", b"{": "{", b"}": "}", b"\n": "\n", b"\r": "\n"}


def extract_rtf(data: bytes, limits: ExtractLimits) -> str:
    """Return the body text of an RTF document.

    Args:
        data: the document's bytes.
        limits: only ``max_chars`` applies.

    Returns:
        The text with paragraphs as newlines and cells as tabs.
    """
    sink = TextSink(limits.max_chars)
    _RtfReader(data, sink).run()
    return drop_surrogates(sink.getvalue())


class _RtfReader:
    """One pass over the RTF tokens with a stack of group states (skip flag, unicode fallback count)."""

    def __init__(self, data: bytes, sink: TextSink) -> None:
        self._data = data
        self._sink = sink
        self._pos = 0
        self._stack: list[tuple[bool, int]] = []
        self._skip = False
        self._uc = 1  # characters that follow \uN as a fallback for old readers
        self._pending_skip = 0
        self._group_start = False
        self._codepage = "cp1252"
        self._bytes = bytearray()

    def run(self) -> None:
        """Read tokens until the data or the sink's budget runs out."""
        data = self._data
        while self._pos < len(data) and not self._sink.full:
            match = _TOKEN.match(data, self._pos)
            if match is None:  # the pattern covers every byte; this only guards the loop
                break
            self._pos = match.end()
            self._token(match)
        self._flush()

    def _token(self, match: re.Match[bytes]) -> None:
        """Dispatch one token."""
        word, param, hex_byte, symbol, group, text = match.groups()
        group_start, self._group_start = self._group_start, False
        if hex_byte is not None:
            self._byte(int(hex_byte, 16))
        elif text is not None:
            self._text(text)
        elif word is not None:
            self._flush()
            self._word(word.decode("ascii"), param, group_start)
        elif group is not None:
            self._flush()
            self._group(group)
        elif symbol is not None:
            self._flush()
            self._symbol(symbol, group_start)

    def _group(self, brace: bytes) -> None:
        r"""Open or close a group, saving or restoring the skip state and ``\uc`` count."""
        if brace == b"{":
            self._stack.append((self._skip, self._uc))
            self._group_start = True
        elif self._stack:
            self._skip, self._uc = self._stack.pop()
        self._pending_skip = 0

    def _word(self, word: str, param: bytes | None, group_start: bool) -> None:
        """Apply a control word: skip destinations, breaks, unicode escapes, code page, binary data."""
        if group_start and word in _SKIP:
            self._skip = True
        elif word == "bin" and param is not None:
            self._pos += max(int(param), 0)  # raw binary data follows
        elif word == "uc" and param is not None:
            self._uc = max(int(param), 0)
        elif word == "u" and param is not None:
            self._emit(chr(int(param) % 0x10000))
            self._pending_skip = self._uc
        elif word == "ansicpg" and param is not None:
            self._codepage = _codepage(int(param), self._codepage)
        elif word in _BREAKS and not self._skip:
            self._sink.sep(_BREAKS[word])
        elif word in _CHARS:
            self._emit(_CHARS[word])

    def _symbol(self, symbol: bytes, group_start: bool) -> None:
        r"""Apply a control symbol; ``\*`` at a group start marks an unknown destination to skip."""
        if symbol == b"*":
            if group_start:
                self._skip = True
        elif symbol in _SYMBOLS:
            self._emit(_SYMBOLS[symbol])

    def _byte(self, value: int) -> None:
        r"""Collect one ``\'hh`` byte (a multi-byte character may span several)."""
        if self._pending_skip:
            self._pending_skip -= 1
        elif not self._skip:
            self._bytes.append(value)

    def _text(self, text: bytes) -> None:
        r"""Write a run of literal text, minus the fallback characters that follow a ``\u``."""
        if self._pending_skip:
            dropped = min(self._pending_skip, len(text))
            self._pending_skip -= dropped
            text = text[dropped:]
        if not self._skip:
            self._bytes.extend(text)

    def _emit(self, text: str) -> None:
        """Write decoded text unless inside a skipped destination."""
        self._flush()
        if not self._skip:
            self._sink.write(text)

    def _flush(self) -> None:
        """Decode collected code-page bytes and write them."""
        if self._bytes:
            self._sink.write(self._bytes.decode(self._codepage, "replace"))
            self._bytes.clear()


def _codepage(number: int, current: str) -> str:
    r"""Return the Python codec for an RTF ``\ansicpg`` number, keeping ``current`` if unknown."""
    name = "cp65001" if number == 65001 else f"cp{number}"
    try:
        "".encode(name)
    except LookupError:
        return current
    return name
