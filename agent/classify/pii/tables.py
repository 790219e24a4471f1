"""Cells of table columns whose header names an entity (``name``, ``Nachname``, ``date_of_birth``)."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

from agent.classify.pii.text import MAX_FINDINGS

if TYPE_CHECKING:
    import re
    from collections.abc import Iterable, Iterator

    from agent.classify.pii.text import Table, TextView

__all__ = ["column_cells"]


def column_cells(
    view: TextView, header: re.Pattern[str], tables: Iterable[Table]
) -> Iterator[tuple[str, list[str]]]:
    """Yield ``(header cell, cells below it)`` for each table column whose header matches ``header``.

    Args:
        view: the text and its tables.
        header: a pattern that must match a whole lower-case header cell.
        tables: the tables to look at (see :meth:`TextView.tables_at`).

    Yields:
        The header cell and the column's cells, stripped, at most ``MAX_FINDINGS`` rows per table.
    """
    for table in tables:
        columns = [i for i, cell in enumerate(table.header) if header.fullmatch(cell)]
        if not columns:
            continue
        rows = _rows(view.text[table.start : table.end], table.delim)
        for column in columns:
            yield table.header[column], [row[column].strip() for row in rows if len(row) > column]


def _rows(block: str, delim: str) -> list[list[str]]:
    """Parse a delimited block with the csv module (quotes, embedded delimiters), tolerating errors."""
    rows: list[list[str]] = []
    reader = csv.reader(io.StringIO(block), delimiter=delim)
    try:
        for row in reader:
            if row:
                rows.append(row)
            if len(rows) >= MAX_FINDINGS:
                break
    except csv.Error:
        pass
    return rows
