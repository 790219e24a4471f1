"""One text under inspection: its lower-cased twin, where values could be, and its tables.

The detectors share a :class:`TextView` so that the costly passes (lower-casing, the trigger search,
finding table headers) run once per text. A detector runs its regex only in the windows around the
triggers it needs (see :mod:`agent.classify.pii.triggers`), never over the whole text. Labels are
searched in ``lower`` with case-sensitive patterns, which is several times faster than
``re.IGNORECASE``; ``lower`` keeps the offsets of ``text``.
"""

from __future__ import annotations

import bisect
import itertools
import re
from functools import cached_property
from typing import TYPE_CHECKING, Any

from agent.classify.pii.layout import (
    HEADER_LINES,
    PARAGRAPH,
    Table,
    cell_spans,
    column_of,
    table_at,
    table_headed_by,
)
from agent.classify.pii.triggers import Hits, encode, find_hits

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = [
    "BEFORE",
    "IBAN_SHAPE",
    "IBAN_TRIGGERS",
    "MAX_CANDIDATES",
    "MAX_FINDINGS",
    "Table",
    "TextView",
    "boundary_label",
    "merge_spans",
    "trie",
    "unescape",
    "words",
]

MAX_FINDINGS = 10_000
MAX_CANDIDATES = 20_000  # matches one pattern may hand to validation in one text: bounds adversarial input
BEFORE = 40  # how far before a value its label may start
_SLACK = 64  # longer than any value a window's regex matches: a match starting in a window ends in reach
_JOIN = 32  # windows closer than this are scanned as one
_SEPARATOR = r"[\s_.-]*"  # between the words of a label: "date of birth", "date_of_birth", "dateofbirth"
# An IBAN as written (validity aside): phone and card candidates inside one are parts of it.
IBAN_SHAPE = re.compile(
    r"[A-Z](?<![A-Za-z0-9].)[A-Z][0-9]{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?(?![A-Za-z0-9])"
)
IBAN_TRIGGERS = ("iban",)

_MAX_KEY = 48
# Each starts with a literal newline, so the regex engine skips from line to line.
_TAB_PAIR = re.compile(rf"\n[^\t\n]{{1,{_MAX_KEY}}}(\t)[^\t\n]+(?=\n|\Z)")
_FIRST_TAB_PAIR = re.compile(rf"[^\t\n]{{1,{_MAX_KEY}}}(\t)[^\t\n]+(?=\n|\Z)")
_PAIR_PIPES, _PAIR_CELLS = 3, 2  # "| key | value |": three pipes at most, two cells
_PADDED_COLON = re.compile(r":[ \t]{2,}(?=[^\W\d_a-zß-ÿ])")
_EQUALS_KEY = re.compile(r"=[\"'](?=[^\W\d_a-zß-ÿ])")  # a quoted value (only those count); found fast
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


def trie(phrases: Iterable[str]) -> str:
    """Return a regex matching any of the literal ``phrases``, factored by common prefixes.

    The regex engine tries an alternation's branches one by one; factored, it reads each character once
    (``dear|drogi`` becomes ``d(?:ear|rogi)``). Where one phrase extends another the longer is tried first.
    """
    return _token_trie([re.escape(char) for char in phrase] for phrase in phrases)


def _token_trie(phrases: Iterable[list[str]]) -> str:
    """Return the factored alternation of ``phrases`` given as lists of regex tokens."""
    tree: dict[str, Any] = {}
    for tokens in phrases:
        node = tree
        for token in tokens:
            node = node.setdefault(token, {})
        node[""] = {}
    return _branches(tree)


def _branches(node: dict[str, Any]) -> str:
    """Return the regex for the phrases below ``node`` (the key ``""`` marks that a phrase ends here)."""
    branches = [token + _branches(child) for token, child in sorted(node.items()) if token]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"
    return f"(?:{body})?" if "" in node else body


def boundary_label(alternatives: str) -> re.Pattern[str]:
    r"""Compile lower-case label alternatives with letter/digit boundaries (``_`` counts as a boundary).

    Args:
        alternatives: a flat alternation of lower-case labels, literal but for ``\.``-style escapes; a
            space stands for ``[\s_.-]*``. Factored by prefix (see :func:`trie`), longer labels are tried
            first.

    Returns:
        The compiled pattern, to be run on :attr:`TextView.lower`.
    """
    body = _token_trie(_label_tokens(label) for label in alternatives.split("|"))
    return re.compile(rf"(?<![^\W_])(?:{body})(?![^\W_])")


def _label_tokens(label: str) -> list[str]:
    """Split a label into regex tokens: escapes, separators (a space) and literal characters."""
    tokens: list[str] = []
    chars = iter(label)
    for char in chars:
        if char == "\\":
            tokens.append(char + next(chars))
        else:
            tokens.append(_SEPARATOR if char == " " else re.escape(char))
    return tokens


class TextView:
    """A text and the derived views the detectors share."""

    def __init__(self, text: str) -> None:
        self.text = text
        low = text.lower()
        if len(low) != len(text):  # a few characters lower-case to two; keep offsets aligned
            low = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
        self.lower = low
        self._tables: dict[int, Table | None] = {}

    @cached_property
    def _encoded(self) -> tuple[bytes, bytes]:
        return encode(self.text)

    @property
    def shape(self) -> bytes:
        """The text's shape, one ``#`` longer at either end (see :mod:`agent.classify.pii.triggers`)."""
        return self._encoded[1]

    @cached_property
    def hits(self) -> Hits:
        """Trigger offsets per group (see :func:`agent.classify.pii.triggers.find_hits`)."""
        return find_hits(*self._encoded, self.lower)

    def windows(self, groups: Iterable[str], back: int, ahead: int = 2) -> list[tuple[int, int]]:
        """Return merged spans ``[hit - back, hit + ahead)`` around the hits of ``groups``.

        A value containing a trigger starts at most ``back`` characters before it, or just after it
        where the trigger starts with the character before the value (``#AA00``).
        """
        offsets = sorted(itertools.chain.from_iterable(self.hits.get(group, ()) for group in groups))
        return merge_spans((max(0, hit - back), hit + ahead) for hit in offsets)

    def finditer(
        self, pattern: re.Pattern[str], windows: Iterable[tuple[int, int]], reach: int = _SLACK
    ) -> Iterator[re.Match[str]]:
        """Yield the matches of ``pattern`` starting in ``windows``, in order, at most ``MAX_CANDIDATES``.

        ``reach`` bounds how far past a window a match and its look-ahead may read (the pattern's
        longest match and a little more): the regex engine tries starts up to there.
        """
        return itertools.islice(self._finditer(self.text, pattern, windows, reach), MAX_CANDIDATES)

    @staticmethod
    def _finditer(
        text: str, pattern: re.Pattern[str], windows: Iterable[tuple[int, int]], reach: int
    ) -> Iterator[re.Match[str]]:
        last = 0
        for lo, hi in windows:
            for match in pattern.finditer(text, max(lo, last), hi + reach):
                if match.start() >= hi:
                    break
                last = match.end()
                yield match
                if last >= hi:  # the next match would start past the window
                    break

    @cached_property
    def key_ends(self) -> list[int]:
        """Where keys end that the trigger search does not find, in order.

        The tab of a line of two cells ("Name<TAB>Jane Doe", a form exported from a spreadsheet or an
        HTML table), the pipe between the two cells of a markdown row, an equals sign before a
        capitalised value (``holder="Jane Doe"`` in a log line) and a colon padded with blanks to
        align a form's values.
        """
        text, ends = self.text, []
        if "\t" in text:  # lines of exactly two cells: a key of at most _MAX_KEY characters, a tab, a value
            first = _FIRST_TAB_PAIR.match(text)
            ends += [first.start(1)] if first else []
            ends += [m.start(1) for m in _TAB_PAIR.finditer(text)]
        if '="' in text or "='" in text:
            ends += [
                m.start() for m in _EQUALS_KEY.finditer(text) if m.start() and text[m.start() - 1].isalpha()
            ]
        ends += [m.start() for m in _PADDED_COLON.finditer(text)]  # an aligned form: "Name:     Jane Doe"
        if "\n|" in text or text.startswith("|"):  # a markdown table's rows start with a pipe
            ends += _pipe_pairs(text)
        return sorted(ends)

    @cached_property
    def _iban_shapes(self) -> tuple[list[int], list[int]]:
        starts, ends = [], []
        for match in self.finditer(IBAN_SHAPE, self.windows(IBAN_TRIGGERS, 0)):
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
        table = self.table_of(pos)
        if table is None or pos >= table.end:
            return None
        line_start = self.text.rfind("\n", 0, pos) + 1
        if line_start <= table.start:
            return None
        column = column_of(self.text[line_start:pos], table.delim)
        return table.header[column] if column < len(table.header) else None

    @cached_property
    def _paragraphs(self) -> list[int]:
        return [0] + [m.end() for m in PARAGRAPH.finditer(self.text)]

    def table_of(self, pos: int) -> Table | None:
        """Return the table of the paragraph ``pos`` is in, if it has one."""
        return self._table(bisect.bisect_right(self._paragraphs, pos) - 1)

    def _table(self, index: int) -> Table | None:
        """Return the table of paragraph ``index``, finding it on first use."""
        if index not in self._tables:
            starts = self._paragraphs
            end = starts[index + 1] if index + 1 < len(starts) else len(self.text)
            self._tables[index] = table_at(self.text, starts[index], end)
        return self._tables[index]

    def tables_at(self, hits: Iterable[int]) -> list[Table]:
        """Return the tables headed by the lines holding one of ``hits``, to the end of their paragraph.

        A header row holds its column's label, whose trigger is the hit, and is one of the first
        ``HEADER_LINES`` lines of its paragraph (a word deeper in is in a row). A hit in the rows of a
        table found above heads no other table.
        """
        text, covered, line_end = self.text, 0, -1
        found: dict[int, Table | None] = {}
        for hit in sorted(hits):
            if hit < covered or hit <= line_end:  # in a table found above, or on the line just read
                continue
            end = text.find("\n", hit)
            line_end = len(text) if end < 0 else end
            start = text.rfind("\n", 0, hit) + 1
            index = bisect.bisect_right(self._paragraphs, hit)
            paragraph_end = self._paragraphs[index] if index < len(self._paragraphs) else len(text)
            if text.count("\n", self._paragraphs[index - 1], start) >= HEADER_LINES:
                found[start] = None  # deep in its paragraph: a row of a table (or of prose), not a header
                continue
            found[start] = table = table_headed_by(text, start, line_end, paragraph_end)
            if table is not None:
                covered = table.end
        return sorted((table for table in found.values() if table is not None), key=lambda table: table.start)

    def column_spans(self, label: re.Pattern[str], hits: Iterable[int]) -> list[tuple[int, int]]:
        """Return the cell spans of the columns headed by ``label`` in the tables at ``hits``, in order."""
        spans: list[tuple[int, int]] = []
        for table in self.tables_at(hits):
            for column, cell in enumerate(table.header):
                if label.search(cell) is not None:
                    spans.extend(cell_spans(self.text, table, column))
        return sorted(spans)


def _pipe_pairs(text: str) -> list[int]:
    """Where the key cell ends on each line of two pipe-separated cells (``| Full name | Jane Doe |``).

    A markdown table of fields and values: its first cell is a key, its second the value.
    """
    ends, offset = [], 0
    for line in text.split("\n"):
        if "|" in line and line.count("|") <= _PAIR_PIPES:
            body = line.strip()
            lead = len(line) - len(line.lstrip()) + (1 if body.startswith("|") else 0)
            cells = body.strip("|").split("|")
            if len(cells) == _PAIR_CELLS and 0 < len(cells[0].strip()) <= _MAX_KEY and cells[1].strip():
                ends.append(offset + lead + len(cells[0]))
        offset += len(line) + 1
    return ends


def merge_spans(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge ``(start, end)`` spans given in order of start that overlap or lie within ``_JOIN``."""
    merged: list[tuple[int, int]] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1] + _JOIN:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged
