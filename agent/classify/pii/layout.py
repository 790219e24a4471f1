"""Tables in a text: a paragraph whose header row of delimited cells is one of its first few lines.

Exports often put a title or a "generated on" line over the header row; of the first ``HEADER_LINES``
lines of a paragraph the header is the one with the most header-like cells (a two-cell ``Report: x``
line above loses to the real header). Tables are read only where a detector needs one: at a trigger
in its header row (see :meth:`agent.classify.pii.text.TextView.tables_at`).

Cells are split at delimiters outside double quotes; splitting the line at its quotes first keeps the
work in ``str`` methods (every other piece is inside quotes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "DELIMITERS",
    "HEADER_LINES",
    "PARAGRAPH",
    "Table",
    "cell_spans",
    "column_of",
    "could_be_header",
    "name_cell",
    "split_cells",
    "table_at",
]

PARAGRAPH = re.compile(r"\n[ \t\r]*\n")
HEADER_LINES = 6  # the header row is one of a paragraph's first this many lines
DELIMITERS = ("\t", ";", "|", ",")
_HEADER_CELL = re.compile(r"[\w .()/#°-]{1,48}")
_MAX_HEADER_LINE = 2048
_MAX_HEADER_CELL = 48


@dataclass(frozen=True, slots=True)
class Table:
    """A block of delimited lines: where it starts and ends, its delimiter and header cells (lower)."""

    start: int
    end: int
    delim: str
    header: tuple[str, ...]


def name_cell(cell: str) -> str:
    """Return a table cell without surrounding quotes, blanks and markdown emphasis, in lower case."""
    return cell.strip().strip("\"'*`").strip().lower()


def could_be_header(text: str, start: int, end: int) -> bool:
    """Return whether the line ``[start, end)`` is short enough for its delimited cells to be a header."""
    if end - start > _MAX_HEADER_LINE:
        return False
    delim = _delimiter(text, start, end)
    # cells of a header row are short: a line much longer than its cells could be is prose or code
    return bool(delim) and end - start <= _MAX_HEADER_CELL * (text.count(delim, start, end) + 1) + 1


def table_at(text: str, start: int, end: int) -> Table | None:
    """Return the table of the paragraph ``[start, end)``, headed by one of its first ``HEADER_LINES`` lines.

    Of those lines, the header row is the one with the most cells (the first of equals).
    """
    best = None
    for _ in range(HEADER_LINES):
        line_end = text.find("\n", start, min(end, start + _MAX_HEADER_LINE))
        if line_end < 0:
            if end - start > _MAX_HEADER_LINE:
                break  # a long line is prose, not a header row
            line_end = end
        if could_be_header(text, start, line_end):
            delim = _delimiter(text, start, line_end)
            table = _header_row(text[start:line_end].rstrip("\r"), delim, line_end, end)
            if table is not None and (best is None or len(table.header) > len(best.header)):
                best = table
        start = line_end + 1
        if start >= end:
            break
    return best


def _header_row(line: str, delim: str, line_end: int, end: int) -> Table | None:
    """Return the table headed by ``line`` if it is a row of short header-like cells."""
    if len(line) > _MAX_HEADER_CELL * (line.count(delim) + 1):
        return None
    cells = tuple(name_cell(c) for c in split_cells(line, delim))
    if sum(1 for c in cells if _HEADER_CELL.fullmatch(c)) >= max(2, len(cells) // 2):
        return Table(line_end, end, delim, cells)
    return None


def _delimiter(text: str, start: int, end: int) -> str:
    """Return the delimiter of a delimited line (the first of tab, ``;``, ``|``, ``,`` present)."""
    for delim in DELIMITERS:
        if text.find(delim, start, end) >= 0:
            return delim
    return ""


def split_cells(line: str, delim: str) -> list[str]:
    """Split a line at ``delim`` characters that are not inside double quotes (quotes are kept)."""
    if '"' not in line:
        return line.split(delim)
    cells = [""]
    for index, piece in enumerate(line.split('"')):
        if index:
            cells[-1] += '"'
        if index % 2:
            cells[-1] += piece
        else:
            first, *rest = piece.split(delim)
            cells[-1] += first
            cells.extend(rest)
    return cells


def column_of(prefix: str, delim: str) -> int:
    """Return the column a position is in: the ``delim`` characters of ``prefix`` outside quotes."""
    if '"' not in prefix:
        return prefix.count(delim)
    return sum(piece.count(delim) for piece in prefix.split('"')[::2])


def cell_spans(text: str, table: Table, column: int) -> Iterator[tuple[int, int]]:
    """Yield the ``(start, end)`` offsets of the cells of ``column`` on each line below the header."""
    pos = table.start + 1
    while pos < table.end:
        end = text.find("\n", pos, table.end)
        end = table.end if end < 0 else end
        offset = 0
        for index, cell in enumerate(split_cells(text[pos:end], table.delim)):
            if index == column:
                yield pos + offset, pos + offset + len(cell)
                break
            offset += len(cell) + 1
        pos = end + 1
