"""Person names, where a label or the structure says a name follows.

Places that count: a name key before a colon (``Name:``, ``Patient:``, ``"full_name":``, vCard ``FN:``
and ``N:``, ``Nachname:`` ...; not a qualified ``Project name:``), a mail header with a display name
(``From: "Jane Doe" <jane@...>``), a salutation opening a line (``Dear Ms Doe``, ``Sehr geehrte Frau
Weber``), the line under a sign-off (``Kind regards,`` / ``Jane Doe``), an honorific before two name
words anywhere (``Mr. John Smith``) and a table column headed by a name key. The value must look like a
name: capitalised words with particles, no digits, no legal form (``GmbH``) and none of the common words
that fill such slots in code and forms (``Name: String``, ``Customer: Unknown``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from agent.classify.pii.keys import Key, Keys, keyed, normalise
from agent.classify.pii.name_words import looks_like_name
from agent.classify.pii.tables import column_cells
from agent.classify.pii.text import MAX_FINDINGS

if TYPE_CHECKING:
    from agent.classify.pii.text import TextView

__all__ = ["count_names"]

_SINGLE = (
    "first name|last name|given name|family name|middle name|maiden name|surname|forename|vorname|nachname|"
    "familienname|prénom|prenom|cognome|apellido|apellidos|voornaam|achternaam|imię|imie|nazwisko"
)
_QUALIFIED = (
    "full|complete|customer|patient|client|employee|contact|person|display|legal|account holder|card holder|"
    "holder|beneficiary|insured|guest|passenger|student|applicant"
)
_FULL = (
    "name|patient|patientin|customer|client|cliente|employee|contact|contact person|applicant|account holder|"
    "cardholder|beneficiary|recipient|attn|attention|author|assignee|reporter|signed|signature|fn|"
    "vollständiger name|kunde|kundin|ansprechpartner|ansprechpartnerin|empfänger|absender|kontoinhaber|"
    "nom|nom complet|nom et prénom|destinataire|expéditeur|titulaire|"
    "nome|nome e cognome|nome completo|nominativo|paziente|destinatario|mittente|intestatario|titolare|"
    "nombre|nombre completo|nombre y apellidos|paciente|remitente|titular|"
    "naam|volledige naam|patiënt|klant|ontvanger|afzender|rekeninghouder|tenaamstelling|"
    "imię i nazwisko|imie i nazwisko|pacjent|klient|odbiorca|nadawca|posiadacz|właściciel"
)
_MAIL = "from|to|cc|bcc|reply to|sender|von|an|de|à|da|a|para|van|aan|od|do"
_KEYS = Keys(
    [(p, "single") for p in _SINGLE.split("|")]
    + [(p, "full") for p in _FULL.split("|")]
    + [(f"{q} name", "full") for q in _QUALIFIED.split("|")]
    + [(p, "mail") for p in _MAIL.split("|")]
    + [("n", "n")]
)
_SPACES = "[ _.-]*"
_HEADER_KEYS = f"{_SINGLE}|{_FULL}".replace(" ", _SPACES)
_HEADER = re.compile(rf"(?:(?:{_QUALIFIED.replace(' ', _SPACES)}){_SPACES})?(?:{_HEADER_KEYS})(?:\s*\(.*\))?")
# Both run on the lower-cased text (``(?i)`` is several times slower): the alternatives are lower case.
_SALUTATION = re.compile(
    r"\n[ \t>*\"']*(?:dear|hello|hi|sehr geehrte[r]?|liebe[r]?|hallo|cher|chère|bonjour|gentile|"
    r"gentilissim[oa]|"
    r"egregi[oa]|car[oa]|estimad[oa](?:/[oa])?|querid[oa](?:/[oa])?|hola|beste|geachte|szanown[ya]|drog[ia]|"
    r"dzień dobry|witam|madame|monsieur|mademoiselle)[ \t]+(?=\w)"
)
_SIGNOFF = re.compile(
    r"\n[ \t>*\"']*(?:kind regards|best regards|warm regards|regards|sincerely|yours sincerely|"
    r"yours faithfully|best wishes|best|thanks|thank you|cheers|"
    r"mit freundlichen grüßen|mit freundlichen grüssen|freundliche grüße|viele grüße|beste grüße|liebe grüße|"
    r"cordialement|bien cordialement|bien à vous|salutations distinguées|sincères salutations|"
    r"cordiali saluti|distinti saluti|saluti|un saluto|atentamente|un saludo|saludos cordiales|saludos|"
    r"met vriendelijke groet(?:en)?|vriendelijke groet(?:en)?|groeten|hartelijke groet(?:en)?|"
    r"z poważaniem|pozdrawiam|z wyrazami szacunku|serdecznie pozdrawiam)"
    r"(?:[ \t\"',.!]*\r?\n(?:[ \t\"']*\r?\n)?[ \t>*\"']*|[ \t]*[,!]+[ \t]*)"
)
# An honorific before two capitalised words names a person anywhere ("Mr. John Smith"). Honorifics that
# are also common nouns (German "Frau", Polish "Pan") are left to salutations and labels. Written as one
# branch of literals so that the regex engine skips ahead on the set of first letters.
_HONORIFIC = re.compile(
    r"(?:M(?:rs?|s|x|me|lle|adame|onsieur)|D(?:r|hr)|Prof|Mevr|S(?:ig(?:\.ra|nor|nora)?|eñor|eñora))"
    r"\.?[ ]+(?=[A-ZÀ-ÞŁŚŻŹĆŃ])"
)
_PHRASE_END = re.compile(r"[.!?](?:\s|\Z)|[\n\r\t,;:()<>\[\]{}\"|=]")
_LINE_END = re.compile(r"[\"']?[ \t]*[,;]?[ \t]*\r?(?:\n|\Z)")
_MAX_SIGNATURE_WORDS = 5
_SINGLE_SET = frozenset(_SINGLE.split("|"))
_GREETING_END = re.compile(r"[,:!]|[\n\r\t|;<>()\[\]{}\"=]|\s{3,}")
_VALUE_END = re.compile(r"[\n\r\t|;<>()\[\]{}\"=]|,|\s{3,}")
_MAIL_NAME = re.compile(r"[ \t]*\"?([^\"<>\n@]{2,60}?)\"?[ \t]*<[^<>\s@]+@[^<>\s@]+\.[A-Za-z]{2,24}>")
# A bare "name" key names a person only when nothing qualifies it: "Project name:" does not.
_BARE_KEYS = frozenset({"name", "nom", "nome", "nombre", "naam"})
_KEY_START = re.compile(r"(?:^|[\n\r\t\"'{,;|*>(\[-])[ \t*]*\Z")


def count_names(view: TextView, limit: int = MAX_FINDINGS) -> int:
    """Count person names at labels, mail headers, salutations and in name columns."""
    found = _keyed_names(view, limit)
    found += _salutation_names(view, limit - found)
    found += _titled_names(view, limit - found)
    for header, cells in column_cells(view, _HEADER):
        single = normalise(header) in _SINGLE_SET
        for cell in cells:
            if found >= limit:
                return found
            found += looks_like_name(cell.split(), single_ok=single)
    return min(found, limit)


def _keyed_names(view: TextView, limit: int) -> int:
    """Count names after ``key:`` where the key names a person (or is a mail address header)."""
    found = 0
    for key in keyed(view, _KEYS):
        found += _keyed_value(view.text, key)
        if found >= limit:
            break
    return found


def _keyed_value(text: str, key: Key) -> bool:
    """Return whether the value after a name key is a name (mail headers need ``Name <addr>``)."""
    if key.phrase in _BARE_KEYS and not _KEY_START.search(text, max(0, key.start - 8), key.start):
        return False
    if key.kind == "mail":
        mail = _MAIL_NAME.match(text, key.value)
        return mail is not None and looks_like_name(mail.group(1).replace(",", " ").split())
    value = text[key.value : key.value + 120].lstrip(" \t\"'")
    if key.kind == "n":  # vCard ``N:Family;Given;Middle;Prefix;Suffix``
        if key.start > 0 and text[key.start - 1] not in "\n\r":
            return False
        parts = value.split("\n", 1)[0].split(";")
        return looks_like_name([p.strip() for p in parts[:3] if p.strip()][::-1], single_ok=False)
    end = _VALUE_END.search(value)
    words = (value[: end.start()] if end else value).split()
    return looks_like_name(words, single_ok=key.kind == "single")


def _salutation_names(view: TextView, limit: int) -> int:
    """Count names after a salutation opening a line (``Dear``, ``Geachte``) or under a sign-off line."""
    found, text, lower = 0, "\n" + view.text, "\n" + view.lower
    for match in _SALUTATION.finditer(lower):
        value = text[match.end() : match.end() + 80]
        end = _GREETING_END.search(value)
        words = (value[: end.start()] if end else value).split()
        # "Dear Anna," names one person; without the comma a single word is too weak
        found += looks_like_name(words, single_ok=end is not None and end.group() in ",:!")
        if found >= limit:
            return found
    for match in _SIGNOFF.finditer(lower):
        end = _LINE_END.search(text, match.end(), match.end() + 80)
        words = text[match.end() : end.start()].split() if end else []
        found += len(words) <= _MAX_SIGNATURE_WORDS and looks_like_name(words, single_ok=False)
        if found >= limit:
            break
    return found


def _titled_names(view: TextView, limit: int) -> int:
    """Count honorifics followed by a name ("Mr. John Smith", "Frau Weber") anywhere in the text."""
    found, text = 0, view.text
    for match in _HONORIFIC.finditer(text):
        if found >= limit:
            break
        if match.start() > 0 and text[match.start() - 1].isalpha():
            continue
        value = text[match.end() : match.end() + 60]
        end = _PHRASE_END.search(value)
        words = (value[: end.start()] if end else value).split()
        found += looks_like_name(words, single_ok=False, min_words=2)
    return found
