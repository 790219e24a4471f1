"""Organisations' vCards: their names, mailboxes, numbers and addresses relate to no person.

An address book exported whole holds companies' cards beside people's. RFC 6350 marks them with
``KIND`` (``org``, ``group``, ``location``), Apple's address book with ``X-ABShowAs:COMPANY``, and
other cards write an empty ``N`` (``N:;;;;``) beside an ``ORG`` or repeat the organisation's name as
``FN``. Such
cards are blanked (same length, so offsets hold) before the detectors run.
"""

from __future__ import annotations

import re

__all__ = ["without_organisation_cards"]

_CARD = re.compile(r"^begin:vcard[ \t]*\r?$.*?^end:vcard[ \t]*\r?$", re.IGNORECASE | re.MULTILINE | re.DOTALL)
_NOT_INDIVIDUAL = re.compile(
    r"^(?:kind[^:\n]*:[ \t]*(?!individual)[a-z]|x-abshowas[^:\n]*:[ \t]*company)", re.MULTILINE
)
_FN = re.compile(r"^(?:[\w-]+\.)?fn[;:][^\n]*?([^:\n]*)$", re.MULTILINE)
_N = re.compile(r"^(?:[\w-]+\.)?n[;:]([^\n]*)$", re.MULTILINE)
_ORG = re.compile(r"^(?:[\w-]+\.)?org[;:](?:[^:\n]*:)?([^;\n]*)", re.MULTILINE)
_BLANK = re.compile(r"[^\n]")


def without_organisation_cards(text: str) -> str:
    """Return ``text`` with every organisation's vCard blanked (its newlines kept)."""
    if "vcard" not in text and "VCARD" not in text:
        return text
    return _CARD.sub(
        lambda card: _BLANK.sub(" ", card.group()) if _organisation(card.group()) else card.group(), text
    )


def _organisation(card: str) -> bool:
    """Whether a vCard is an organisation's (see the module docstring)."""
    lower = card.lower()
    if _NOT_INDIVIDUAL.search(lower):
        return True
    org = _ORG.search(lower)
    if org is None or not org.group(1).strip():
        return False
    name = _N.search(lower)
    if name is not None and not name.group(1).replace(";", "").strip():
        return True  # an empty N ("N:;;;;") beside an organisation: no person's name parts
    full = _FN.search(lower)
    return full is not None and full.group(1).strip() == org.group(1).strip()
