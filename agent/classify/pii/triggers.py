"""Where values could be: the places each detector looks at, found in literal searches per text.

A detector's regex is costly where it must be tried at every digit (a log line has dozens), so each text
is first reduced to its *shape* (digits become ``0``, capitals ``A``, small letters ``a``, non-ASCII
``U``; the separators values are written with stay; everything else becomes ``#``) and multi-literal
searches find the shapes no value can do without: two groups of three digits around a separator, ``+``
before a digit, a capital pair before two digits, a colon before a capital and so on. Another search
over the lower-cased text finds the labels that are looked for first (birth-date and address words),
one over the text the honorifics; runs of five or more digits are found with ``bytes.find``. Offsets
are character offsets: the text is encoded as Latin-1, one byte per character (others become ``?``).

The literal searches run on Hyperscan where it has a wheel (x86-64, macOS on ARM): three scans per
text, with databases of a few kilobytes. Elsewhere they run on YARA-X, with one rule set per group of
shape literals (a scan for a few literals is several times faster than one for all); each compiled
rule set holds about 1.7 MiB of native code, which is why Hyperscan is preferred. Both find the same
offsets (``tests/classify/test_triggers.py`` holds them to it).

Neither a Hyperscan database (its scratch space) nor a YARA-X scanner is shared between threads, so
each thread builds its own on first use.
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

try:
    import hyperscan

    _IMPORTED = True
except ImportError:  # no wheel for this platform: the YARA-X search finds the same offsets
    _IMPORTED = False
# Hyperscan is used only where it also runs (see _hyperscan_usable, at the end of the module).

from agent.classify.pii.person_keys import header_words

if TYPE_CHECKING:
    from collections.abc import Callable

    import yara_x

__all__ = ["BACKEND", "Hits", "encode", "find_hits"]

Hits = dict[str, list[int]]

_SEPARATED_BY = (" ", "-", ".", "/", ")", ") ", ")-")
_NOT_ALNUM = (" ", "#", "-", "(", ")", "+", ".", "/", ":", '"', "'")
_AFTER_COLON = ("", " ", '"', ' "', "'", " '", "#", "# ", "## ")  # "#": markup such as "**Name:** Jane"
# Groups of shape literals; each group has its own scanner (a scan for a few literals is several times
# faster than one scan for all). A literal of four characters or fewer is its own atom: the scan then
# verifies nothing, so short literals are preferred where their characters are rare in logs and tables.
_SHAPES: dict[str, tuple[str, ...]] = {
    "spaced": ("000 000",),
    "separated": (*(f"000{sep}000" for sep in _SEPARATED_BY if sep != " "), "0)00"),  # "+49 (0)30 123456"
    "card": ("0000 0000", "0000-0000"),
    "pairs": ("00 00 00", "00-00-00-00", "00.00.00.00"),
    "plus": ("+0", "+("),
    "ssn": ("000-00-0000",),
    "fiscal": ("AAAAAA0",),
    "iban": tuple(f"{before}AA00" for before in _NOT_ALNUM),
    "postcode": ("0 AA", "0000AA", "-000 A", "-000 U", "-000#"),  # NL "1234 AB", PL "12-345 City"
    "uk_postcode": tuple(f"0AA{after}" for after in _NOT_ALNUM if after != "-"),
    "colon": tuple(f":{gap}{first}" for gap in _AFTER_COLON for first in "AU"),
}


def _shortest(words: tuple[str, ...]) -> tuple[str, ...]:
    """The words that hold none of the others (``nom`` finds ``nome``), as the lower text is encoded."""
    encoded = {word.encode("latin-1", "replace").decode("latin-1") for word in words}
    return tuple(sorted(w for w in encoded if not any(o != w and o in w for o in encoded)))


# Label words, in lower case: a part of each label of the group (the scan looks for them in ``lower``).
# Two- and three-letter words make slow scans: "né" is looked for with what may follow it.
_BIRTH = (
    "dob", "d.o.b", "birth", "born", "bday", "geb.", "gebu", "gebo", "geb ", "geb:", "naiss", "n\xe9e",
    "n\xe9(", "n\xe9 ", "n\xe9:", "nascita", "nato", "nata", "nac", "urodz", "ur.", "nasc", "f\xf6d",
    "f\xf8d", "f\xf8dt", "naroz",
)  # fmt: skip
_ADDRESS = (
    "addr", "adr", "anschrift", "wohnort", "domicil", "indirizzo", "residenza", "direcci", "zamieszkania",
    "street", "stra\xdfe", "strasse", "calle", "straat", "ulica", "endere", "morada", "bydli",
)  # fmt: skip
_LABELS: dict[str, tuple[str, ...]] = {
    "birth": _BIRTH,
    "address": _ADDRESS,
    "vcard": ("\nfn:", "\nn:"),  # a vCard name may start with a small title: "FN:pan Jan Nowak"
    "cn": (";cn=",),  # iCalendar ATTENDEE;CN="Jane Doe" and ORGANIZER;CN=...
    # the last words of the keys that head name columns: only tables whose header holds one are read
    "person_header": _shortest(header_words()),
    # titles written in small letters after a key (the shape's "colon" group wants a capital)
    "colon": tuple(
        f":{gap}{title}" for gap in ("", " ", '"', ' "') for title in ("pan ", "pani ", "dhr", "mevr")
    ),
}
_TITLES = (
    "Mr", "Ms", "Mx", "Mme", "Mlle", "Madame", "Monsieur", "Dr", "Dhr", "Prof", "Mevr", "Sig", "Se\xf1or",
)  # fmt: skip

_SHAPE = bytearray(b"U" * 256)  # characters beyond Latin-1 are encoded as "?"
_SHAPE[:128] = b"#" * 128
for _first, _last, _class in (("0", "9", "0"), ("A", "Z", "A"), ("a", "z", "a")):
    _SHAPE[ord(_first) : ord(_last) + 1] = _class.encode() * (ord(_last) - ord(_first) + 1)
for _char, _class in (("_", "a"), ("?", "U"), *((c, c) for c in " .-/()+:\"'")):
    _SHAPE[ord(_char)] = ord(_class)
_SHAPE_TABLE = bytes(_SHAPE)
_RUN = b"00000"
_DIGITS = re.compile(rb"0*")
_SMALL = frozenset(b"aU")  # a run after a small letter is part of a word or a hex string
_SMALL_LETTER, _CAPITAL, _EXTENSION = ord("a"), ord("A"), ord("x")
_LONG_RUN = 7  # shorter runs are parts of values found by their separators ("030 123456")
_POSTCODE_BEFORE = frozenset(b" #(:\"'")


@dataclass(frozen=True, slots=True)
class _Literals:
    """A Hyperscan database of literals, and per literal id its group and length."""

    database: hyperscan.Database
    groups: tuple[str, ...]
    lengths: tuple[int, ...]


def _database(groups: dict[str, tuple[str, ...]]) -> _Literals:
    """Compile one Hyperscan database matching every literal of ``groups`` (Latin-1 bytes)."""
    literals = [(name, literal) for name, group in groups.items() for literal in group]
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(
        expressions=[literal.encode("latin-1") for _, literal in literals],
        ids=list(range(len(literals))),
        flags=0,
        literal=True,
    )
    return _Literals(database, tuple(name for name, _ in literals), tuple(len(lit) for _, lit in literals))


def _collect(literal: int, _start: int, end: int, _flags: int, found: Any) -> None:  # noqa: ANN401 - the scan context
    found.append((literal, end))  # found: the list[tuple[int, int]] passed as the scan's context


def _hyperscan_search(data: bytes, shape: bytes, lower: bytes, hits: Hits) -> None:
    """Add the start offsets of every literal of every group to ``hits`` (three Hyperscan scans)."""
    databases: tuple[_Literals, ...] | None = getattr(_LOCAL, "databases", None)
    if databases is None:
        databases = (_database(_SHAPES), _database(_LABELS), _database({"title": _TITLES}))
        _LOCAL.databases = databases
    for literals, buffer, shift in zip(databases, (shape, lower, data), (1, 0, 0), strict=True):
        found: list[tuple[int, int]] = []
        literals.database.scan(buffer, match_event_handler=_collect, context=found)
        groups, lengths = literals.groups, literals.lengths
        for literal, end in found:
            hits[groups[literal]].append(end - lengths[literal] - shift)


def _literal(text: str) -> str:
    """Return ``text`` as a YARA text string: Latin-1 bytes, escaped where not printable ASCII."""
    return (
        '"'
        + "".join(
            char if " " <= char <= "~" and char not in '"\\' else f"\\x{ord(char):02x}" for char in text
        )
        + '"'
    )


def _rules(groups: dict[str, tuple[str, ...]]) -> yara_x.Rules:
    """Compile one YARA-X rule per group, each matching any of the group's literals."""
    import yara_x  # noqa: PLC0415 - only where Hyperscan is missing

    compiler = yara_x.Compiler()
    for name, literals in groups.items():
        strings = " ".join(f"$s{i} = {_literal(lit)}" for i, lit in enumerate(literals))
        compiler.add_source(f"rule {name} {{ strings: {strings} condition: any of them }}")
    return compiler.build()


def _needed(literals: tuple[str, ...]) -> bytes:
    """A shape byte in every one of ``literals``: a digit where there is one (blanks are everywhere)."""
    common = set.intersection(*(set(literal.encode("latin-1")) for literal in literals))
    return bytes([ord("0") if ord("0") in common else min(common)])


# A text whose shape lacks a byte every literal of a group contains (a digit, for most groups) is not
# scanned for that group: looking for one byte is several times faster than a YARA-X scan.
_SHAPE_NEEDS = tuple(_needed(literals) for literals in _SHAPES.values())
_LOCAL = threading.local()


def _yara_search(data: bytes, shape: bytes, lower: bytes, hits: Hits) -> None:
    """Add the start offsets of every literal of every group to ``hits`` (YARA-X scans)."""
    scanners: tuple[list[yara_x.Scanner], yara_x.Scanner, yara_x.Scanner] | None = getattr(
        _LOCAL, "scanners", None
    )
    if scanners is None:
        import yara_x  # noqa: PLC0415 - only where Hyperscan is missing

        shapes = [yara_x.Scanner(_rules({name: literals})) for name, literals in _SHAPES.items()]
        scanners = (shapes, yara_x.Scanner(_rules(_LABELS)), yara_x.Scanner(_rules({"title": _TITLES})))
        _LOCAL.scanners = scanners
    shape_scanners, labels, titles = scanners
    present: dict[bytes, bool] = {}
    scans = [
        (scanner, shape, 1)
        for scanner, need in zip(shape_scanners, _SHAPE_NEEDS, strict=True)
        if present.setdefault(need, need in shape)
    ]
    scans += [(labels, lower, 0), (titles, data, 0)]
    for scanner, buffer, shift in scans:
        for rule in scanner.scan(buffer).matching_rules:
            found = hits[rule.identifier]
            for pattern in rule.patterns:
                found.extend(match.offset - shift for match in pattern.matches)


_SEARCHES: dict[str, Callable[[bytes, bytes, bytes, Hits], None]] = {
    "hyperscan": _hyperscan_search,
    "yara-x": _yara_search,
}


def _hyperscan_usable() -> bool:
    """Whether Hyperscan imports and runs here: its library needs SSSE3, which some virtual CPUs lack."""
    if not _IMPORTED:
        return False
    found: list[tuple[int, int]] = []
    try:
        _database({"probe": ("ab",)}).database.scan(b"xab", match_event_handler=_collect, context=found)
    except hyperscan.error:
        return False
    return found == [(0, 3)]


BACKEND = "hyperscan" if _hyperscan_usable() else "yara-x"  # the literal search in use


def encode(text: str) -> tuple[bytes, bytes]:
    """Return ``text`` as Latin-1 bytes and its shape (which has one ``#`` more at either end)."""
    data = text.encode("latin-1", "replace")
    return data, b"#" + data.translate(_SHAPE_TABLE) + b"#"  # the text's ends read as separators


def find_hits(data: bytes, shape: bytes, lower: str) -> Hits:
    """Return, per trigger group, the sorted offsets in the text where the group's literals start.

    Groups: those of ``_SHAPES`` and ``_LABELS``, ``title``, and ``run`` (runs of seven or more digits
    not in a word) and ``five`` (runs of exactly five digits after a blank, quote, colon, bracket or
    line end, and not before a letter). ``data`` and ``shape`` are from :func:`encode`, ``lower`` is
    the text in lower case, with the same offsets.
    """
    hits: Hits = defaultdict(list)
    _SEARCHES[BACKEND](data, shape, lower.encode("latin-1", "replace"), hits)
    _find_runs(shape, data, hits)
    for offsets in hits.values():
        offsets.sort()
    return hits


def _find_runs(shape: bytes, data: bytes, hits: Hits) -> None:
    """Add the starts of digit runs of seven or more (``run``) and of exactly five (``five``).

    A run after a small letter, or before one (but an extension's ``x``), is part of a word or a hex
    string. ``shape`` starts with one separator byte, so shape offset ``start`` is text offset
    ``start - 1``.
    """
    end = 0
    while (start := shape.find(_RUN, end)) >= 0:
        match = _DIGITS.match(shape, start + len(_RUN))
        end = match.end() if match else start + len(_RUN)
        before, after = shape[start - 1], shape[end]
        if (after == _SMALL_LETTER and data[end - 1] != _EXTENSION) or before in _SMALL:
            continue
        if end - start >= _LONG_RUN:
            hits["run"].append(start - 1)
        elif end - start == len(_RUN) and before in _POSTCODE_BEFORE and after != _CAPITAL:
            hits["five"].append(start - 1)
