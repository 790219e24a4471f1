"""One text under inspection: its lower-cased twin, the windows around digits and its tables.

The detectors share a :class:`TextView` so that the costly passes (lower-casing, finding the digit
windows, finding table headers) run once per text. Labels are searched in ``lower`` with case-sensitive
patterns, which is several times faster than ``re.IGNORECASE``; ``lower`` keeps the offsets of ``text``.
"""

from __future__ import annotations

import bisect
import itertools
import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "BEFORE",
    "IBAN_SHAPE",
    "MAX_CANDIDATES",
    "MAX_FINDINGS",
    "Table",
    "TextView",
    "boundary_label",
    "name_cell",
    "unescape",
    "words",
]

MAX_FINDINGS = 10_000
MAX_CANDIDATES = 20_000  # matches one pattern may hand to validation in one text: bounds adversarial input
BEFORE = 40  # how far before a value its label may start
# Context kept either side of the digits: enough for the letters a digit-bearing value starts or ends
# with (``DE89...``, ``BCCFRC15M25E852P``) and the look-arounds; labels are looked up in the whole text.
_MARGIN = 16
_CLUSTER = re.compile(rf"[0-9](?:[^0-9]{{0,{2 * _MARGIN}}}[0-9])*")
_DELIMS = ("\t", ";", "|", ",")
_PARAGRAPH = re.compile(r"\n[ \t\r]*\n")
_HEADER_CELL = re.compile(r"[\w .()/#°-]{1,48}")
_MAX_HEADER_LINE = 2048
_MAX_HEADER_CELL = 48
# An IBAN as written (validity aside): phone and card candidates inside one are parts of it.
IBAN_SHAPE = re.compile(
    r"[A-Z](?<![A-Za-z0-9].)[A-Z][0-9]{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?(?![A-Za-z0-9])"
)


_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|([nrt\"/\\]))")
_ESCAPED = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "/": "/", "\\": "\\"}


def unescape(text: str) -> str:
    r"""Resolve JSON-style escapes (``\u00fc``, ``\n``) so that escaped values read as written."""
    if "\\" not in text:
        return text
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)) if m.group(1) else _ESCAPED[m.group(2)], text)


def words(text: str) -> frozenset[str]:
    """Return the whitespace-separated words of ``text`` as a set (for word lists written as prose)."""
    return frozenset(text.split())


def boundary_label(alternatives: str) -> re.Pattern[str]:
    r"""Compile lower-case label alternatives with letter/digit boundaries (``_`` counts as a boundary).

    Args:
        alternatives: a flat regex alternation (no nested groups with ``|``) written in lower case; a space
            stands for ``[\s_.-]*``. Longer alternatives are tried first.

    Returns:
        The compiled pattern, to be run on :attr:`TextView.lower`.
    """
    # Longest first, so that "geb. am" wins over "geb" where both match.
    options = sorted(alternatives.split("|"), key=len, reverse=True)
    body = "|".join(options).replace(" ", r"[\s_.-]*")
    return re.compile(rf"(?<![^\W_])(?:{body})(?![^\W_])")


def name_cell(cell: str) -> str:
    """Return a table cell without surrounding quotes, blanks and markdown emphasis, in lower case."""
    return cell.strip().strip("\"'*`").strip().lower()


@dataclass(frozen=True, slots=True)
class Table:
    """A block of delimited lines: where it starts and ends, its delimiter and header cells (lower)."""

    start: int
    end: int
    delim: str
    header: tuple[str, ...]


class TextView:
    """A text and the derived views the detectors share."""

    def __init__(self, text: str) -> None:
        self.text = text
        low = text.lower()
        if len(low) != len(text):  # a few characters lower-case to two; keep offsets aligned
            low = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
        self.lower = low

    @cached_property
    def windows(self) -> tuple[tuple[int, int], ...]:
        """Spans of the text within ``_MARGIN`` characters of a digit, merged; empty without digits."""
        text = self.text
        if not any(d in text for d in "0123456789"):
            return ()
        size = len(text)
        return tuple(
            (max(0, m.start() - _MARGIN), min(size, m.end() + _MARGIN)) for m in _CLUSTER.finditer(text)
        )

    def finditer(self, pattern: re.Pattern[str]) -> Iterator[re.Match[str]]:
        """Yield the matches of a digit-bearing pattern in the digit windows, at most ``MAX_CANDIDATES``."""
        return itertools.islice(self._finditer(self.text, pattern), MAX_CANDIDATES)

    def finditer_lower(self, pattern: re.Pattern[str]) -> Iterator[re.Match[str]]:
        """Yield the matches of a lower-case pattern in the lower-cased digit windows (``MAX_CANDIDATES``)."""
        return itertools.islice(self._finditer(self.lower, pattern), MAX_CANDIDATES)

    def _finditer(self, text: str, pattern: re.Pattern[str]) -> Iterator[re.Match[str]]:
        for lo, hi in self.windows:
            yield from pattern.finditer(text, lo, hi)

    @cached_property
    def _iban_shapes(self) -> tuple[list[int], list[int]]:
        starts, ends = [], []
        for match in self.finditer(IBAN_SHAPE):
            starts.append(match.start())
            ends.append(match.end())
        return starts, ends

    def in_iban_shape(self, pos: int) -> bool:
        """Return whether ``pos`` falls inside something written like an IBAN."""
        starts, ends = self._iban_shapes
        index = bisect.bisect_right(starts, pos) - 1
        return index >= 0 and pos < ends[index]

    def label_before(self, start: int, label: re.Pattern[str], span: int = BEFORE) -> bool:
        """Return whether ``label`` ends within ``span`` characters before ``start`` or heads its column."""
        return label.search(self.lower, max(0, start - span), start) is not None or self.header_is(
            start, label
        )

    def header_is(self, pos: int, label: re.Pattern[str]) -> bool:
        """Return whether ``pos`` sits in a table column whose header cell is ``label``."""
        header = self.header_at(pos)
        return header is not None and label.search(header) is not None

    def header_at(self, pos: int) -> str | None:
        """Return the lower-case header cell of the table column ``pos`` is in, if any."""
        tables = self.tables
        if not tables:
            return None
        index = bisect.bisect_right(self._table_starts, pos) - 1
        if index < 0 or pos >= tables[index].end:
            return None
        table = tables[index]
        line_start = self.text.rfind("\n", 0, pos) + 1
        if line_start <= table.start:
            return None
        column = _count_outside_quotes(self.text[line_start:pos], table.delim)
        return table.header[column] if column < len(table.header) else None

    @cached_property
    def _table_starts(self) -> list[int]:
        return [table.start for table in self.tables]

    @cached_property
    def tables(self) -> tuple[Table, ...]:
        """The delimited blocks of the text whose first line looks like a header row."""
        found: list[Table] = []
        starts = [0] + [m.end() for m in _PARAGRAPH.finditer(self.text)]
        ends = [*starts[1:], len(self.text)]
        for start, end in zip(starts, ends, strict=True):
            table = _table_at(self.text, start, end)
            if table is not None:
                found.append(table)
        return tuple(found)


def _table_at(text: str, start: int, end: int) -> Table | None:
    """Return the table starting at ``start`` (its first or second line is the header), if any."""
    for _ in range(2):
        line_end = text.find("\n", start, min(end, start + _MAX_HEADER_LINE))
        if line_end < 0:
            if end - start > _MAX_HEADER_LINE:
                return None  # a long first line is prose, not a header row
            line_end = end
        line = text[start:line_end].rstrip("\r")
        delim = _delimiter(line)
        if delim and len(line) <= _MAX_HEADER_CELL * (line.count(delim) + 1):
            cells = tuple(name_cell(c) for c in _split_outside_quotes(line, delim))
            if sum(1 for c in cells if _HEADER_CELL.fullmatch(c)) >= max(2, len(cells) // 2):
                return Table(line_end, end, delim, cells)
        start = line_end + 1
        if start >= end:
            return None
    return None


def _delimiter(line: str) -> str:
    """Return the delimiter of a delimited line (the first of tab, ``;``, ``|``, ``,`` present)."""
    for delim in _DELIMS:
        if delim in line:
            return delim
    return ""


def _split_outside_quotes(line: str, delim: str) -> list[str]:
    """Split a line at ``delim`` characters that are not inside double quotes."""
    if '"' not in line:
        return line.split(delim)
    cells: list[str] = []
    current: list[str] = []
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
        if char == delim and not quoted:
            cells.append("".join(current))
            current = []
        else:
            current.append(char)
    cells.append("".join(current))
    return cells


def _count_outside_quotes(prefix: str, delim: str) -> int:
    """Count the ``delim`` characters of ``prefix`` that are not inside double quotes."""
    if '"' not in prefix:
        return prefix.count(delim)
    return len(_split_outside_quotes(prefix, delim)) - 1
