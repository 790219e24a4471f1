"""Tables in a text: a paragraph whose header row of delimited cells is one of its first few lines.

Exports often put a title or a "generated on" line over the header row; of the first ``HEADER_LINES``
lines of a paragraph the header is the first as wide as the rows below it (a two-cell
``Report<TAB>x`` line above is passed over). Where a detector looks for a column by its header word,
the header is the line holding that word, however deep in its paragraph (see
:meth:`agent.classify.pii.text.TextView.tables_at`).

Cells are split at delimiters outside double quotes; splitting the line at its quotes first keeps the
work in ``str`` methods (every other piece is inside quotes).
"""

from __future__ import annotations

import re
from collections import Counter
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
    "table_headed_by",
]

PARAGRAPH = re.compile(r"\n[ \t\r]*\n")
HEADER_LINES = 6  # the header row is one of a paragraph's first this many lines
DELIMITERS = ("\t", ";", "|", ",")
_HEADER_CELL = re.compile(r"[\w .()/#°-]{1,48}")
_MAX_HEADER_LINE = 2048
_MAX_HEADER_CELL = 48
_SAMPLE_ROWS = 4  # rows read beyond the header lines to learn a table's width


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

    The header row is the first of those lines that could head the rows below: it has (nearly) as
    many cells as most of the paragraph's first lines, so that title lines with fewer cells above it
    ("Report<TAB>CRM export") are passed over, and a data row under it is not taken for it.
    """
    lines = _first_lines(text, start, end, HEADER_LINES + _SAMPLE_ROWS)
    counts = [_cell_count(text, lo, hi) for lo, hi in lines]
    common = Counter(count for count in counts if count > 1).most_common(1)
    if not common:
        return None
    wanted = common[0][0] - 1  # a header may lack one trailing cell of the rows
    for (lo, hi), count in zip(lines[:HEADER_LINES], counts, strict=False):
        if count >= wanted and (table := table_headed_by(text, lo, hi, end)) is not None:
            return table
    return None


def table_headed_by(text: str, start: int, line_end: int, end: int) -> Table | None:
    """Return the table whose header row is the line ``[start, line_end)``, its rows to ``end``.

    Every cell of it reads as a header cell, and the row under it is about as wide: prose with a few
    commas is not a table.
    """
    if not could_be_header(text, start, line_end):
        return None
    delim = _delimiter(text, start, line_end)
    table = _header_row(text[start:line_end].rstrip("\r"), delim, line_end, end)
    if table is None or not all(_HEADER_CELL.fullmatch(cell) for cell in table.header if cell):
        return None
    below = text.find("\n", line_end + 1, end)
    row = (line_end + 1, end if below < 0 else below)
    wide = row[0] < end and len(split_cells(text[row[0] : row[1]], delim)) >= max(2, len(table.header) - 1)
    return table if wide else None


def _first_lines(text: str, start: int, end: int, count: int) -> list[tuple[int, int]]:
    """The spans of up to ``count`` lines from ``start`` (a line longer than a header row ends the list)."""
    lines: list[tuple[int, int]] = []
    while start < end and len(lines) < count:
        line_end = text.find("\n", start, min(end, start + _MAX_HEADER_LINE))
        if line_end < 0:
            if end - start > _MAX_HEADER_LINE:
                break  # a long line is prose, not a header row
            line_end = end
        lines.append((start, line_end))
        start = line_end + 1
    return lines


def _cell_count(text: str, start: int, end: int) -> int:
    """The number of cells of a line, split at its delimiter (0 when it has none)."""
    delim = _delimiter(text, start, end)
    return len(split_cells(text[start:end], delim)) if delim else 0


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
