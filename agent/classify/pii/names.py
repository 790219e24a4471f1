"""Person names, where a label or the structure says a name follows.

Places that count: a name key before a colon (``Name:``, ``Patient:``, ``"full_name":``, vCard ``FN:``
and ``N:``, ``Nachname:`` ...; not a qualified ``Project name:``), a mail header with a display name
(``From: "Jane Doe" <jane@...>``), a salutation opening a line (``Dear Ms Doe``, ``Sehr geehrte Frau
Weber``), the line under a sign-off (``Kind regards,`` / ``Jane Doe``), an honorific before two name
words anywhere (``Mr. John Smith``) and a table column headed by a name key. The value must look like a
name: capitalised words with particles, no digits, no legal form (``GmbH``) and none of the common words
that fill such slots in code and forms (``Name: String``, ``Customer: Unknown``). A column under a bare
``name`` (not ``full name``, ``customer``, ``Nachname`` ...) also lists products and projects: there a
cell counts only as a full name (two or more name words), and only if full names fill a quarter of the
rows. Keys are only read at colons followed by a capital (or a title in small letters: ``pan``,
``dhr.``), honorifics only where the trigger search found one.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from agent.classify.pii.contact import role_mailbox
from agent.classify.pii.keys import Key, Keys, keyed, normalise
from agent.classify.pii.name_words import looks_like_name
from agent.classify.pii.person_keys import FULL as _FULL
from agent.classify.pii.person_keys import QUALIFIED as _QUALIFIED
from agent.classify.pii.person_keys import SINGLE as _SINGLE
from agent.classify.pii.tables import column_cells
from agent.classify.pii.text import MAX_FINDINGS, trie, words

if TYPE_CHECKING:
    from agent.classify.pii.text import Table, TextView

__all__ = ["count_names"]

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
# In a column header "ship" qualifies a recipient (an order export's ship_name); as a key it is a vessel.
_HEADER_QUALIFIED = f"{_QUALIFIED}|ship"
_HEADER = re.compile(
    rf"(?:(?:{_HEADER_QUALIFIED.replace(' ', _SPACES)}){_SPACES})?(?:{_HEADER_KEYS})(?:\s*\(.*\))?"
)
# Both run on the lower-cased text (``(?i)`` is several times slower): the phrases are lower case. A line
# is tried once: its indentation is taken possessively and the phrases are factored by prefix.
_GREETINGS = (
    "dear", "hello", "hi", "sehr geehrte", "sehr geehrter", "liebe", "lieber", "hallo", "cher", "chère",
    "bonjour", "gentile", "gentilissimo", "gentilissima", "egregio", "egregia", "caro", "cara",
    *(f"{word}{end}{alt}" for word in ("estimad", "querid") for end in "oa" for alt in ("", "/o", "/a")),
    "hola", "beste", "geachte", "szanowny", "szanowna", "drogi", "droga", "dzień dobry", "witam", "madame",
    "monsieur", "mademoiselle",
)  # fmt: skip
_SIGNOFFS = (
    "kind regards", "best regards", "warm regards", "regards", "sincerely", "yours sincerely",
    "yours faithfully", "best wishes", "best", "thanks", "thank you", "cheers", "mit freundlichen grüßen",
    "mit freundlichen grüssen", "freundliche grüße", "viele grüße", "beste grüße", "liebe grüße",
    "cordialement", "bien cordialement", "bien à vous", "salutations distinguées", "sincères salutations",
    "cordiali saluti", "distinti saluti", "saluti", "un saluto", "atentamente", "un saludo",
    "saludos cordiales", "saludos", "met vriendelijke groet", "met vriendelijke groeten",
    "vriendelijke groet", "vriendelijke groeten", "groeten", "hartelijke groet", "hartelijke groeten",
    "z poważaniem", "pozdrawiam", "z wyrazami szacunku", "serdecznie pozdrawiam",
)  # fmt: skip
# What ends a sign-off line: the line break (and a blank line) before the name, or a comma before it.
_SIGNOFF_TAIL = r"(?:[ \t\"',.!]*\r?\n(?:[ \t\"']*\r?\n)?[ \t>*\"']*|[ \t]*[,!]+[ \t]*)"
# One pass finds both: a line that opens with a greeting or a sign-off (one factored test per line),
# then which of the two it is (a line may be both: "Liebe Grüße,").
_OPENING = re.compile(
    rf"\n[ \t>*\"']*+(?={trie(_GREETINGS + _SIGNOFFS)})"
    rf"(?=(?P<greeting>{trie(_GREETINGS)})[ \t]+(?=\w))?"
    rf"(?=(?P<signoff>{trie(_SIGNOFFS)}){_SIGNOFF_TAIL})?"
)
_SIGNOFF_GAP = re.compile(_SIGNOFF_TAIL)
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
_SINGLE_SET = frozenset(k for key in _SINGLE.split("|") for k in (key, key.replace(" ", "")))  # firstName
_GREETING_END = re.compile(r"[,:!]|[\n\r\t|;<>()\[\]{}\"=]|\s{3,}")
_VALUE_END = re.compile(r"[\n\r\t|;<>()\[\]{}\"=]|,|\s{3,}")
_MAIL_NAME = re.compile(r"[ \t]*\"?([^\"<>\n@]{2,60}?)\"?[ \t]*<([^<>\s@]+)@[^<>\s@]+\.[A-Za-z]{2,24}>")
# A bare "name" key names a person only when nothing qualifies it: "Project name:" does not.
_BARE_KEYS = frozenset({"name", "nom", "nome", "nombre", "naam"})
_PEOPLE_SHARE = 4  # a bare "name" column holds people when one row in this many has a full name
# After "Family," the given names, then the end of the value (a line end, a delimiter or nothing).
_INVERTED = re.compile(r"[ ]?([^\W\d_][\w'\u2019-]*(?:[ ][^\W\d_][\w'\u2019-]*)?)[ \t]*(?=[\r\n\t|;\"]|\Z)")
_RULER = re.compile(r"[ \t]*(?:-{2,}|={2,})(?:[ \t]+(?:-{2,}|={2,}))+[ \t]*")
_RULE_RUN = re.compile(r"-+|=+")
# A chat export's line: WhatsApp on iOS "[27.09.23, 19:38:35] Name: ", on Android
# "27/09/2023, 19:38 - Name: ".
_CHAT_LINE = re.compile(
    r"\n\[?[0-9]{1,2}[./-][0-9]{1,2}[./-][0-9]{2,4},?[ ][0-9]{1,2}:[0-9]{2}(?::[0-9]{2})?(?:[ ]?[APap][Mm])?"
    r"(?:\][ ]|[ ]-[ ])([^:\n]{2,40}?):[ ]"
)
_CHAT_SCAN = 1 << 20  # characters of a text read for chat senders
_CHAT_HEAD = 2048  # a text is read as a chat only when a chat line is in its first characters
_CALENDAR_PEOPLE = ("attendee", "organizer")
_MAILTO = re.compile(r"mailto:([^@\s:;]+)@")
_MAX_CALENDAR_LINE = 400  # how far past CN= its line's other parameters (CUTYPE) are looked for
_NOT_A_PERSON = re.compile(r";cutype=(?!individual)[^;:\n]*[;:]")
_NAME_WORDS = _BARE_KEYS | {"namn", "navn", "nazwisko", "jméno"}  # words for a name, in any key
_PERSON_ROLES = words(
    "employee mitarbeiter mitarbeiterin arbeitnehmer arbeitnehmerin patient patientin paziente paciente "
    "patiënt pacjent werknemer medewerker pracownik pracownica dipendente empleado empleada salarié "
    "salariée employé employée versicherter versicherte policyholder applicant student"
)
_CN_END = re.compile(r'[";:\n\r]')
_KEY_START = re.compile(r"(?:^|[\n\r\t\"'{,;|*>(\[-])[ \t*]*\Z")


def count_names(view: TextView, limit: int = MAX_FINDINGS) -> int:
    """Count person names at labels, mail headers, salutations and in name columns."""
    found = _keyed_names(view, limit)
    found += _calendar_names(view, limit - found)
    found += _chat_names(view, limit - found)
    found += _salutation_names(view, limit - found)
    found += _titled_names(view, limit - found)
    found += _ruled_names(view, limit - found)
    for table in view.tables_at(view.hits.get("person_header", ())):
        if not _may_name_people(view, table):
            continue
        for header, cells in column_cells(view, _HEADER, (table,)):
            found += _column_names(view, table, normalise(header), cells)
            if found >= limit:
                return limit
    return min(found, limit)


def _may_name_people(view: TextView, table: Table) -> bool:
    """Return whether a table may hold names: a name column, and enough full names if the key is bare.

    A full name has a blank before a capital, which a shape search counts in one pass: a product list
    under a bare ``name`` has too few of them to be a list of people.
    """
    headers = [normalise(cell) for cell in table.header if _HEADER.fullmatch(cell)]
    if not headers or not all(header in _BARE_KEYS for header in headers):
        return bool(headers)
    shape, start, end = view.shape, table.start + 1, table.end + 1  # the shape is one longer in front
    capitals = shape.count(b" A", start, end) + shape.count(b" U", start, end)
    return _PEOPLE_SHARE * capitals >= _rows(view, table)


def _rows(view: TextView, table: Table) -> int:
    """Return the number of lines under a table's header row."""
    return max(1, view.text.count("\n", table.start + 1, table.end))


def _column_names(view: TextView, table: Table, header: str, cells: list[str]) -> int:
    """Count the names in a name column of a delimited table (see :func:`_count_column`)."""
    return _count_column(header, cells, _rows(view, table))


def _count_column(header: str, cells: list[str], rows: int) -> int:
    """Count the names in a name column; a bare ``name`` column must hold people, not products.

    Under a bare ``name`` a cell counts only as two or more capitalised name words (``Mrs Congress`` is
    a title and one word), and only when at least a quarter of the table's ``rows`` hold one: product
    and project names fill such columns too (a multi-line address cell spreads over several rows).
    """
    if header not in _BARE_KEYS:
        single = header in _SINGLE_SET
        return sum(looks_like_name(cell.split(), single_ok=single) for cell in cells)
    named = sum(looks_like_name(cell.split(), min_words=2) for cell in cells if cell)
    return named if _PEOPLE_SHARE * named >= rows else 0


def _ruled_names(view: TextView, limit: int) -> int:
    """Count names in the columns of fixed-width tables: a header line over a ruler of dashes.

    Reports, ``psql`` and data-frame printouts align their columns with blanks and rule the header
    (``Attendee      Department`` / ``-----------   ----------``); each run of dashes gives a column.
    Every line is read at most once: a table's rows end at a blank line or at the next table's header.
    """
    found, text, covered, end = 0, view.text, 0, -1
    for hit in view.hits.get("person_header", ()):
        if hit < covered or hit <= end:  # in a table read above, or on the line just looked at
            continue
        end = text.find("\n", hit)
        if end < 0:
            break
        start = text.rfind("\n", 0, hit) + 1
        ruler_end = text.find("\n", end + 1)
        ruler = text[end + 1 : len(text) if ruler_end < 0 else ruler_end].rstrip("\r")
        if ruler_end < 0 or not _RULER.fullmatch(ruler):
            continue
        runs = [m.start() for m in _RULE_RUN.finditer(ruler)]
        header = text[start:end]
        rows, covered = _ruled_rows(text, ruler_end + 1)
        for lo, hi in zip(runs, [*runs[1:], None], strict=True):
            cell = normalise(header[lo:hi].strip().lower())
            if _HEADER.fullmatch(cell):
                found += _count_column(cell, [row[lo:hi].strip() for row in rows], len(rows))
        if found >= limit:
            return limit
    return found


def _ruled_rows(text: str, start: int) -> tuple[list[str], int]:
    """The rows of a ruled table from ``start``, and where they end.

    They end at a blank line, at the line over the next ruler (the next table's header) or after
    ``MAX_FINDINGS`` rows.
    """
    rows: list[str] = []
    ends: list[int] = []
    pos = start
    while pos < len(text) and len(rows) < MAX_FINDINGS:
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        line = text[pos:end].rstrip("\r")
        if not line.strip():
            break
        if _RULER.fullmatch(line):
            if rows:  # the line above this ruler heads the next table
                rows.pop()
                ends.pop()
            break
        rows.append(line)
        ends.append(end + 1)
        pos = end + 1
    return rows, ends[-1] if ends else start


def _keyed_names(view: TextView, limit: int) -> int:
    """Count names after ``key:`` where the key names a person (or is a mail address header)."""
    found = 0
    vcards = (hit + 2 + (view.lower[hit + 1] == "f") for hit in view.hits.get("vcard", ()))
    for key in keyed(view, _KEYS, sorted({*view.hits.get("colon", ()), *vcards, *view.key_ends})):
        found += _keyed_value(view.text, key)
        if found >= limit:
            break
    return found


def _keyed_value(text: str, key: Key) -> bool:
    """Return whether the value after a name key is a name (mail headers need ``Name <addr>``)."""
    if text[key.value - 1] == "=":  # key=value: a qualified key and a quoted value ('holder="Jane Doe"')
        if key.phrase in _BARE_KEYS or text[key.value : key.value + 1] not in "\"'":
            return False  # name="Apache Ant" in XML, Name=Firefox in a .desktop file
    elif key.phrase in _BARE_KEYS and not _KEY_START.search(text, max(0, key.start - 8), key.start):
        return False
    if key.kind == "mail":
        mail = _MAIL_NAME.match(text, key.value)
        if mail is None or role_mailbox(mail.group(2)):  # "Acme Alerts <noreply@...>" is no person
            return False
        return looks_like_name(mail.group(1).replace(",", " ").split())
    value = text[key.value : key.value + 120].lstrip(" \t\"'*_")  # quotes, markdown emphasis
    if key.kind == "n":  # vCard ``N:Family;Given;Middle;Prefix;Suffix``
        if key.start > 0 and text[key.start - 1] not in "\n\r":
            return False
        parts = value.split("\n", 1)[0].split(";")
        return looks_like_name([p.strip() for p in parts[:3] if p.strip()][::-1], single_ok=False)
    end = _VALUE_END.search(value)
    words = (value[: end.start()] if end else value).split()
    if end is not None and end.group() == "," and _person_only(key.phrase):
        inverted = _INVERTED.match(value, end.end())  # "Moraes, Helena": the family name first
        if inverted is not None:
            return looks_like_name(inverted.group(1).split() + words)
    return looks_like_name(words, single_ok=key.kind == "single")


def _person_only(phrase: str) -> bool:
    """Whether a key names only people, so that "Family, Given" after it is one name.

    "Customer: Contoso, Munich" is a company and a city.
    """
    return phrase.rsplit(" ", 1)[-1] in _NAME_WORDS or phrase in _PERSON_ROLES


def _chat_names(view: TextView, limit: int) -> int:
    """Count the distinct senders of an exported chat (WhatsApp and the like): "[date, time] Name: text".

    Each sender counts once, however many lines they wrote; a sender must read as a full name.
    """
    text = view.text
    if _CHAT_LINE.search("\n" + text[:_CHAT_HEAD]) is None:  # a chat export starts with its lines
        return 0
    senders = {m.group(1) for m in _CHAT_LINE.finditer("\n" + text[:_CHAT_SCAN])}
    return min(limit, sum(looks_like_name(sender.split(), min_words=2) for sender in senders))


def _calendar_names(view: TextView, limit: int) -> int:
    """Count iCalendar common names: ``ATTENDEE;CN="Jane Doe";...`` and ``ORGANIZER;CN=Jane Doe:...``.

    Only on ATTENDEE and ORGANIZER lines, and not for a group, room or resource (``CUTYPE``).
    """
    found, text, lower, line_start, last = 0, view.text, view.lower, 0, 0
    for hit in view.hits.get("cn", ()):
        if found >= limit:
            break
        newline = lower.rfind("\n", last, hit)  # each stretch of text searched once
        line_start, last = (newline + 1 if newline >= 0 else line_start), hit
        line_end = lower.find("\n", hit, hit + _MAX_CALENDAR_LINE)
        stop = line_end if line_end >= 0 else hit + _MAX_CALENDAR_LINE
        mailto = _MAILTO.search(lower, hit, stop)
        if mailto is not None and role_mailbox(mailto.group(1)):
            continue  # ORGANIZER;CN=...:mailto:events@... is a team's mailbox
        if not lower.startswith(_CALENDAR_PEOPLE, line_start) or _NOT_A_PERSON.search(
            lower, line_start, stop
        ):
            continue
        value = text[hit + 4 : hit + 124].lstrip('"')
        end = _CN_END.search(value)
        found += looks_like_name((value[: end.start()] if end else value).split())
    return found


def _salutation_names(view: TextView, limit: int) -> int:
    """Count names after a salutation opening a line (``Dear``, ``Geachte``) or under a sign-off line."""
    found, text, lower = 0, "\n" + view.text, "\n" + view.lower
    for match in _OPENING.finditer(lower):
        if match.group("greeting") is not None:
            found += _greeted(text, match.end("greeting"))
        if match.group("signoff") is not None:
            gap = _SIGNOFF_GAP.match(lower, match.end("signoff"))
            found += gap is not None and _signed(text, gap.end())
        if found >= limit:
            break
    return found


def _greeted(text: str, start: int) -> bool:
    """Return whether a name follows the greeting that ends at ``start`` ("Dear Anna," or "Dear Ms Weber")."""
    value = text[start : start + 80].lstrip(" \t")
    end = _GREETING_END.search(value)
    words = (value[: end.start()] if end else value).split()
    # "Dear Anna," names one person; without the comma a single word is too weak
    return looks_like_name(words, single_ok=end is not None and end.group() in ",:!")


def _signed(text: str, start: int) -> bool:
    """Return whether the line at ``start`` (under a sign-off) is a name of at most a few words."""
    end = _LINE_END.search(text, start, start + 80)
    words = text[start : end.start()].split() if end else []
    return len(words) <= _MAX_SIGNATURE_WORDS and looks_like_name(words, single_ok=False)


def _titled_names(view: TextView, limit: int) -> int:
    """Count honorifics followed by a name ("Mr. John Smith", "Frau Weber") anywhere in the text."""
    found, text = 0, view.text
    for hit in view.hits.get("title", ()):
        match = _HONORIFIC.match(text, hit)
        if found >= limit:
            break
        if match is None:
            continue
        if match.start() > 0 and text[match.start() - 1].isalpha():
            continue
        value = text[match.end() : match.end() + 60]
        end = _PHRASE_END.search(value)
        words = (value[: end.start()] if end else value).split()
        found += looks_like_name(words, single_ok=False, min_words=2)
    return found
