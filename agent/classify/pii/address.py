"""Postal addresses: a postcode line under a street line, or a street after an address label.

A postcode alone is a five-digit number far too often, so it counts only as part of a block: the postcode
(with its city, or after "City, ST" in the US) starts a line or a comma-separated segment and the line or
segment before it is a street with a house number ("Hauptstr. 5", "12 High Street"), or an address label
is close before it. A street with a number also counts after an address key (``Address:``,
``Anschrift:``, vCard ``ADR;TYPE=home:``) or in a column headed by one. Postcodes are only looked for
where the trigger search found their shape (a run of exactly five digits, ``1234 AB``, ``12-345 City``,
``6XE``), keys and columns where it found an address word.
"""

from __future__ import annotations

import bisect
import re
from typing import TYPE_CHECKING

from agent.classify.pii.keys import Keys, colons_after, keyed
from agent.classify.pii.name_words import COMPANY_MARKERS
from agent.classify.pii.tables import column_cells
from agent.classify.pii.text import MAX_FINDINGS, boundary_label, words

if TYPE_CHECKING:
    from collections.abc import Iterator

    from agent.classify.pii.text import TextView

__all__ = ["count_addresses"]

_STATES = words(
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY "
    "NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC PR GU VI AS MP AA AE AP"
)
# First character before the look-behind, so that the regex engine skips ahead fast.
_DIGIT_POSTCODE = re.compile(
    r"[0-9](?<![\w-].)"
    r"(?:(?P<five>[0-9]{4}(?:-[0-9]{4})?)|(?P<nl>[0-9]{3}[ ]?[A-Z]{2})|(?P<pl>[0-9]-[0-9]{3}))(?![\w-])"
)
_GB_POSTCODE = re.compile(r"[A-Z](?<![\w-].)[A-Z]?[0-9][A-Z0-9]?[ ]?[0-9][A-Z]{2}(?![\w-])")
_SEGMENT_START = r"(?:^|(?<=[\n,;|\t\"]))[ \t]*"
_CITY_WORDS = r"[^\W\d_][^\W\d_'-]*(?:[ .'-]{1,2}[^\W\d_]+){0,3}"
_US_BEFORE = re.compile(
    rf"{_SEGMENT_START}(?:[A-Z]{_CITY_WORDS},[ ]?(?P<state>[A-Z]{{2}})|[ADF]PO[ ]A[AEP])[ ]+\Z"
)
_TOWN_BEFORE = re.compile(rf"{_SEGMENT_START}[A-Z]{_CITY_WORDS}[ ]+\Z")
_CITY_BEFORE = re.compile(rf"{_SEGMENT_START}{_CITY_WORDS},?[ ]*\Z")
_CITY_AFTER = re.compile(
    r"(?:[ ]*,)?(?:[ ]+|[ ]*\r?\n[ \t]*)(?=[A-ZÀ-ÖØ-ÞĄĆĘŁŃÓŚŹŻ])[^\W\d_][\w'.-]*(?:[ ]+[\w'.()-]+){0,3}[ ]*"
    r"(?=$|[\r\n,;|\t\"])"
)
_STREET_LINE = re.compile(
    r"""[0-9]{1,5}[a-zA-Z]?(?:[-/][0-9]{1,5}[a-zA-Z]?)?,?[ ]+[^\W\d_][^\n]{1,60}
      |[^\W\d_][^\n]{1,60}?[^\W\d_.],?\.?[ ]+(?:n(?:o|º|°|r)\.?[ ]?)?
        [0-9]{1,5}[a-zA-Z]?(?:[-/][0-9]{1,5}[a-zA-Z]?)?
        (?:[ ,]+[^\n]{1,30})?""",
    re.VERBOSE,
)
_LABELS = (
    r"address|home address|postal address|mailing address|street address|billing address|shipping address|"
    r"adresse|anschrift|wohnadresse|wohnanschrift|wohnort|postanschrift|lieferadresse|lieferanschrift|"
    r"rechnungsadresse|meldeadresse|adresse postale|adresse de livraison|domicile|"
    r"indirizzo|residenza|domicilio|dirección|direccion|"
    r"adres|woonadres|adres zamieszkania|miejsce zamieszkania|"
    r"endereço|endereco|morada|adress|postadress|adresa|adresa bydliště|bydliště"
)
# Keys and column headers for the street line alone (in prose "street" is no label: "Wall Street 12345").
_STREETS = r"street|street name|straße|strasse|calle|straat|ulica"
_LABEL = boundary_label(_LABELS)
_KEYS = Keys((phrase, "address") for phrase in f"{_LABELS}|{_STREETS}".split("|"))
_HEADER = re.compile(
    rf"(?:[\w ]{{0,20}}[ _.-])?(?:{f'{_LABELS}|{_STREETS}'.replace(' ', r'[ _.-]*')})(?:[ _.-][\w ]{{0,20}})?"
)
_NOT_POSTAL = re.compile(
    r"(?:ip|mac|e-?mail|memory|web|server|bind|listen|remote|local|base|return|wallet|ipv[46])[\W_]*\Z"
)
_LABELLED_STREET = re.compile(
    r"[\s\"';,*_]*(?:[^\W\d_][^\n]{0,40}?[^\W\d_.]\.?,?[ ]+[0-9]{1,5}[a-zA-Z]?(?![\w.:-])"
    r"|[0-9]{1,5}[a-zA-Z]?,?[ ]+[^\W\d_]{3,})"
)
# A list item's marker before an address on its line: "- Jane Doe, Main St 5, 12345 City".
_LIST_MARKER = re.compile(r"\A(?:[-*+\u2022]|[0-9]{1,3}[.)])[ \t]+")
# A key before the street on its line: "LOCATION:1, avenue de Verdier, 62491 Merle" (iCalendar).
_KEY_PREFIX = re.compile(r"\A[A-Za-z][\w-]{0,30}(?:;[^:\n]{0,60})?:[ \t]*")
_BACK = 240
_STREET_TO_POSTCODE_LINES = 2
_ORGANISATION_LINES = 4  # the postcode's line and the three over it
_POSTCODE_TRIGGER = 3  # "1234 AB" and "12-345" are found by their last digit and what follows
_GB_OUTWARD = 8  # the outward code and blank before the inward code's digit, where the trigger is


def count_addresses(view: TextView, limit: int = MAX_FINDINGS) -> int:
    """Count postal addresses (see the module docstring for the shapes that count)."""
    blocks: list[int] = []  # where counted postcodes are: a labelled street above one is that address
    for match in view.finditer(_DIGIT_POSTCODE, view.windows(("five", "postcode"), _POSTCODE_TRIGGER), 16):
        if len(blocks) >= limit:
            return len(blocks)
        if _digit_block(view, match):
            blocks.append(match.start())
    for match in view.finditer(_GB_POSTCODE, view.windows(("uk_postcode",), _GB_OUTWARD), 16):
        if len(blocks) >= limit:
            return len(blocks)
        town = _TOWN_BEFORE.search(view.text, max(0, match.start() - 40), match.start())  # "London NW1 6XE"
        if _block(view, town.start() if town else match.start(), 3):
            blocks.append(match.start())
    blocks.sort()
    found = len(blocks)
    for start in _labelled_values(view):
        if found >= limit:
            return found
        street = _LABELLED_STREET.match(view.text, start)
        found += street is not None and not _closed_below(view.text, blocks, street.end())
    for _, cells in column_cells(view, _HEADER, view.tables_at(view.hits.get("address", ()))):
        found += sum(1 for cell in cells if _LABELLED_STREET.match(cell))
    return min(found, limit)


def _closed_below(text: str, blocks: list[int], end: int) -> bool:
    """Return whether a counted postcode follows a street ending at ``end`` within its next two lines."""
    index = bisect.bisect_left(blocks, end)
    if index == len(blocks):
        return False
    return text.count("\n", end, blocks[index]) <= _STREET_TO_POSTCODE_LINES and blocks[index] - end <= _BACK


def _labelled_values(view: TextView) -> Iterator[int]:
    """Yield where values of address keys start: ``Address:`` (not ``IP address:``) and vCard ``ADR``."""
    hits, lower = view.hits.get("address", ()), view.lower
    for key in keyed(view, _KEYS, sorted({*colons_after(lower, hits), *view.key_ends})):
        if _NOT_POSTAL.search(view.lower, max(0, key.start - 12), key.start) is None:
            yield key.value
    for start in hits:
        line_start = start == 0 or lower[start - 1] in "\r\n"
        colon = lower.find(":", start, start + 64)
        if (
            line_start
            and lower.startswith("adr", start)
            and lower[start + 3 : start + 4] in (";", ":")
            and colon >= 0
        ):
            yield colon + 1


def _digit_block(view: TextView, match: re.Match[str]) -> bool:
    """Return whether a numeric postcode closes an address block, trying each place its segment may start."""
    return any(_block(view, start, 1) for start in _segment_starts(view.text, match))


def _segment_starts(text: str, match: re.Match[str]) -> list[int]:
    """Return where the postcode's segment may start: "City, ST 12345", "City, 12345" or "12345 City"."""
    start, starts = match.start(), []
    head = text[max(0, start - 60) : start].rstrip(" ")
    if match.lastgroup == "five" and head[-2:] in _STATES:
        before = _US_BEFORE.search(text, max(0, start - 60), start)
        if before is not None and before.group("state") in (None, *_STATES):
            starts.append(before.start())
    if match.lastgroup == "five" and head.endswith(","):
        before = _CITY_BEFORE.search(text, max(0, start - 60), start)
        if before is not None:
            starts.append(before.start())
    if _CITY_AFTER.match(text, match.end()) is not None:
        starts.append(start)
    return starts


def _block(view: TextView, start: int, lines: int) -> bool:
    """Return whether an address label is close before ``start`` or a street line precedes it.

    An organisation's address is not personal data: a block under a company's name (a line or a
    segment with a legal form or an organisation word, "Hydra Logistics S.r.l.") does not count.
    """
    if not (view.label_before(start, _LABEL, span=120) or _street_before(view.text, start, lines)):
        return False
    return not _organisation_above(view.text, start)


def _organisation_above(text: str, start: int) -> bool:
    """Whether the three lines over the postcode's line, or its line before it, name an organisation."""
    head = text[max(0, start - _BACK) : start].split("\n")[-_ORGANISATION_LINES:]
    words = " ".join(head).replace("\u00b7", " ").replace("\u2013", " ").split()
    return any(word.strip(",.;:()\"'").lower() in COMPANY_MARKERS for word in words)


def _street_before(text: str, start: int, lines: int) -> bool:
    """Return whether the segment before ``start`` (or one of ``lines`` lines back) is a street."""
    head = text[max(0, start - _BACK) : start].split("\n")
    current = head.pop()
    prefix = current.strip(" \t")
    if prefix and prefix[-1] not in ',;|\t"':
        return False
    candidates = [_last_segment(line) for line in (current, *reversed(head[-lines:]))]
    return any(
        _STREET_LINE.fullmatch(_without_prefix(c.strip(" \t\"',;"))) for c in candidates if c is not None
    )


def _without_prefix(segment: str) -> str:
    """A segment without a key ("LOCATION:") or a list marker ("- ") before its street."""
    return _LIST_MARKER.sub("", _KEY_PREFIX.sub("", segment, count=1), count=1)


def _last_segment(line: str) -> str | None:
    """The last non-empty field of a line (None when it has none).

    Fields end at tabs, ``;``, ``|`` and at commas of CSV (not ``78, rue ...``). The line is read from
    its end, so a long line is not split whole for its last field. Blanks around a separator stay on
    the field; callers strip them.
    """
    line = line.rstrip("\r")
    end = len(line)
    while end > 0:
        cut = max(line.rfind(";", 0, end), line.rfind("|", 0, end), line.rfind("\t", 0, end))
        comma = line.rfind(",", 0, end)
        while comma > cut and line[comma + 1 : comma + 2] == " ":  # ", " separates words, not fields
            comma = line.rfind(",", 0, comma)
        cut = max(cut, comma)
        piece = line[cut + 1 : end]
        if piece.strip(' \t",'):
            return piece
        end = max(cut, 0)
    return None
