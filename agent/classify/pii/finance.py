"""Bank account numbers (IBAN) and payment card numbers.

IBAN: written with or without spaces, checked by python-stdnum (country length, format, mod 97). Card:
12-19 digits grouped like a printed card, Luhn-valid, not one repeated digit, in a known issuer range; a
nearby card label stands in for the range, and 12-13 digit runs without grouping (the length of EAN-13
barcodes) need the label. Neither counts inside something written like an IBAN.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from stdnum import iban, luhn

from agent.classify.pii.text import IBAN_SHAPE, IBAN_TRIGGERS, MAX_FINDINGS, boundary_label

if TYPE_CHECKING:
    from agent.classify.pii.text import TextView

__all__ = ["count_cards", "count_ibans", "known_iin"]

_CARD = re.compile(r"[0-9](?<![A-Za-z0-9.,/-].)(?:[ -]?[0-9]){11,18}(?![0-9]|[.,/-][0-9])")
_CARD_TRIGGERS = ("card", "run")  # a card has a long run or two groups of four around a blank or dash
_CARD_LONGEST = 37
_SEPARATORS = re.compile(r"[ -]")
# 12- and 13-digit runs (old Visa, Maestro) are as long as EAN-13 barcodes: ungrouped, they need a label.
_UNLABELLED_MIN = 14
_UNKNOWN_RANGE_MIN = 15  # an issuer range we do not know is taken on a label's word only from 15 digits
_CARD_LABEL = boundary_label(
    r"card|card number|card no|credit card|debit card|visa|mastercard|maestro|amex|"
    r"kreditkarte|karte|kartennummer|carte|carte bancaire|n° de carte|numéro de carte|carta|carta di credito|"
    r"numero carta|tarjeta|número de tarjeta|numero de tarjeta|kaart|kaartnummer|creditcard|karta|numer karty"
)

# (first digits low, high, allowed lengths): Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay, Maestro.
_IIN_RANGES: tuple[tuple[int, int, frozenset[int]], ...] = (
    (4, 4, frozenset({13, 16, 19})),
    (51, 55, frozenset({16})),
    (2221, 2720, frozenset({16})),
    (34, 34, frozenset({15})),
    (37, 37, frozenset({15})),
    (6011, 6011, frozenset(range(16, 20))),
    (644, 649, frozenset(range(16, 20))),
    (65, 65, frozenset(range(16, 20))),
    (3528, 3589, frozenset(range(16, 20))),
    (1800, 1800, frozenset({15})),
    (2131, 2131, frozenset({15})),
    (300, 305, frozenset(range(14, 20))),
    (36, 36, frozenset(range(14, 20))),
    (38, 39, frozenset(range(14, 20))),
    (62, 62, frozenset(range(16, 20))),
    (5018, 5018, frozenset(range(12, 20))),
    (5020, 5020, frozenset(range(12, 20))),
    (5038, 5038, frozenset(range(12, 20))),
    (5893, 5893, frozenset(range(12, 20))),
    (56, 58, frozenset(range(12, 20))),
    (6304, 6304, frozenset(range(12, 20))),
    (6759, 6759, frozenset(range(12, 20))),
    (6761, 6763, frozenset(range(12, 20))),
)


def count_ibans(view: TextView, limit: int = MAX_FINDINGS) -> int:
    """Count IBANs, with or without spaces, that pass the country length and mod-97 checks."""
    found = 0
    for match in view.finditer(IBAN_SHAPE, view.windows(IBAN_TRIGGERS, 0)):
        if found >= limit:
            break
        found += _valid_iban(match.group())
    return found


def _valid_iban(candidate: str) -> bool:
    """Return whether the candidate, or it without trailing space-separated groups, is a valid IBAN."""
    groups = candidate.split(" ")
    for end in range(len(groups), max(0, len(groups) - 3), -1):
        if iban.is_valid("".join(groups[:end])):
            return True
    return False


def count_cards(view: TextView, limit: int = MAX_FINDINGS) -> int:
    """Count Luhn-valid card numbers of 12-19 digits in a known issuer range, grouped like cards."""
    found = 0
    for match in view.finditer(_CARD, view.windows(_CARD_TRIGGERS, _CARD_LONGEST), _CARD_LONGEST + 3):
        if found >= limit:
            break
        if not view.in_iban_shape(match.start()):
            found += _is_card(view, match)
    return found


def _is_card(view: TextView, match: re.Match[str]) -> bool:
    """Return whether a candidate is a card number; a card label stands in for an unknown issuer range."""
    options = [g for g in _groupings(match.group()) if _card_digits(g, iin=False)]
    if not options:
        return False
    known = [g for g in options if _card_digits(g, iin=True)]
    if known and (len(known[0]) > 1 or len("".join(known[0])) >= _UNLABELLED_MIN):
        return True
    long_enough = known or any(len("".join(g)) >= _UNKNOWN_RANGE_MIN for g in options)
    return bool(long_enough) and view.label_before(match.start(), _CARD_LABEL)


def _groupings(candidate: str) -> list[list[str]]:
    """Return the candidate's digit groups, and its 4-4-4-4 or 4-6-5 part when a stray group is attached."""
    groups = _SEPARATORS.split(candidate)
    options = [groups]
    for start in range(1, len(groups)):
        for end in (start + 3, start + 4):
            part = groups[start - 1 : end - 1]
            if [len(g) for g in part] in ([4, 4, 4, 4], [4, 6, 5]) and part != groups:
                options.append(part)
    return options


def _card_digits(groups: list[str], iin: bool) -> str:
    """Return the digits if the groups form a card number (grouping, Luhn, issuer range if ``iin``)."""
    digits = "".join(groups)
    if not 12 <= len(digits) <= 19 or len(set(digits)) == 1 or not _card_grouping(groups):
        return ""
    return digits if luhn.is_valid(digits) and (known_iin(digits) or not iin) else ""


def _card_grouping(groups: list[str]) -> bool:
    """Return whether groups look like a printed card: one run, fours (last shorter), or 4-6-4/5."""
    sizes = tuple(len(g) for g in groups)
    if len(sizes) == 1:
        return True
    if sizes in ((4, 6, 5), (4, 6, 4)):
        return True
    return all(s == 4 for s in sizes[:-1]) and 1 <= sizes[-1] <= 4


def known_iin(digits: str) -> bool:
    """Return whether a card number starts with a known issuer range allowing its length."""
    for low, high, lengths in _IIN_RANGES:
        width = len(str(low))
        if low <= int(digits[:width]) <= high and len(digits) in lengths:
            return True
    return False
