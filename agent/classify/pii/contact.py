"""E-mail addresses and telephone numbers.

E-mail: a plain local part, ``@``, dotted host labels and an alphabetic TLD that is not a file extension
(``icon@2x.png``); message and calendar identifiers (``UID:``, ``Message-ID:``) and scp locations
(``git@host:repo``) are not mailboxes. Telephone: digit runs with phone separators are pre-filtered by
shape (no dates, versions, IPs, decimals, ZIP+4, SSN shapes, repeated or sequential digits), then
libphonenumber's matcher must find a valid number: international with ``+``/``00``, or national for the
regions the corpus speaks (US, GB, DE, FR, IT, ES, NL, PL) grouped the way that region writes numbers. A
bare run of digits (no ``+``, no separator: order numbers, request ids) needs a phone label before it or
a phone column. Candidates are only looked for around the shapes a number cannot do without (two groups
of three or more digits, ``+`` before a digit, pairs of two digits, a long run of digits).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

import phonenumbers

from agent.classify.pii.text import MAX_CANDIDATES, MAX_FINDINGS, boundary_label, words

if TYPE_CHECKING:
    from agent.classify.pii.text import TextView

__all__ = ["count_emails", "count_phones", "role_mailbox"]

# ---------------------------------------------------------------- e-mail
_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")
_DOMAIN = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}([A-Za-z]{2,24})(?![A-Za-z0-9-]|\.[A-Za-z0-9])"
)
# Message and calendar identifiers are written like addresses: ``UID:1234@host.example``.
_ID_KEY = re.compile(
    r"(?i)(?:^|[\s;])(?:uid|message-id|in-reply-to|references|content-id|msgid)[ \t]*[:=][ \t]*<?\Z"
)
# File extensions that are not (commonly used) top-level domains: ``icon@2x.png`` is a file name.
_FILE_TLDS = words(
    "png jpg jpeg gif svg css js mjs ts tsx jsx webp ico bmp tif tiff html htm php json xml txt exe "
    "dll map scss less woff woff2 ttf eot yml yaml toml lock ini cfg log pdf zip gz tar py java kt "
    "swift"
)


def count_emails(view: TextView, limit: int = MAX_FINDINGS) -> int:
    """Count e-mail addresses: a plain local part, ``@``, dotted host names and an alphabetic TLD."""
    text, found, examined, at = view.text, 0, 0, view.text.find("@")
    while at >= 0 and found < limit and examined < MAX_CANDIDATES:
        if 0 < at < len(text) - 3 and text[at - 1] in _LOCAL_CHARS and text[at + 1].isascii():
            examined += 1
            found += _is_email(text, at)
        at = text.find("@", at + 1)
    return found


def role_mailbox(local: str) -> bool:
    """Whether a local part names a role or a system, not a person (``info@``, ``no-reply@``)."""
    local = local.lower().split("+", 1)[0]
    return local in _ROLE_MAILBOXES or local.startswith(_ROLE_PREFIXES)


def _is_email(text: str, at: int) -> bool:
    """Return whether the ``@`` at ``at`` joins a mailbox local part and a mail domain."""
    start, floor = at, max(0, at - 64)
    while start > floor and text[start - 1] in _LOCAL_CHARS:  # the local part: up to 64 characters back
        start -= 1
    domain = _DOMAIN.match(text, at + 1)
    if start == at or domain is None or domain.group(1).lower() in _FILE_TLDS:
        return False
    name = text[start:at].lstrip(".")
    if role_mailbox(name):
        return False
    after = text[domain.end() : domain.end() + 2]
    key = text[max(0, start - 24) : start]
    if ("=" in key or ":" in key) and _ID_KEY.search(text, max(0, start - 24), start):
        return False
    # ``git@github.com:org/repo`` is an scp-style location, not a mailbox.
    return bool(name) and not name.endswith(".") and not (after[:1] == ":" and after[1:].strip())


# Mailboxes of a role or a system: a company's info@ or noreply@ relates to no one in particular.
_ROLE_MAILBOXES = words(
    "info information contact contacts hello office mail email support help helpdesk service services "
    "customerservice customer-service customer.service customercare care sales billing accounts accounting "
    "invoices invoice payments finance orders order shop store returns shipping delivery logistics "
    "purchasing procurement team admin administrator webmaster postmaster hostmaster abuse security "
    "privacy dpo legal compliance press media marketing newsletter news events jobs careers hr "
    "recruiting notifications notification alerts alert status updates feedback enquiries inquiries "
    "reception bounce bounces mailer-daemon root ops devops it noc soc subscribers subscriptions list "
    "lists monitoring engineering development dev builds build ci jenkins deploy operations reports digest "
    "community partners partnerships investors ir communications comms social webinars training academy "
    "kontakt kundenservice kundendienst bestellung bestellungen rechnung rechnungen buchhaltung vertrieb "
    "zentrale service-client serviceclient commercial facturation contacto ventas atencion "
    "atencionalcliente informacion contatti assistenza amministrazione ordini vendite klantenservice "
    "bestellingen facturen verkoop biuro kontakt zamowienia faktury sprzedaz"
)
_ROLE_PREFIXES = ("noreply", "no-reply", "no_reply", "donotreply", "do-not-reply", "do_not_reply")

# ---------------------------------------------------------------- telephone
_PHONE = re.compile(
    r"""[+(0-9](?<![\w+#/.-].)(?<![0-9]:.)   # first the character class: the engine then skips fast;
    # a key's colon may come before (vCard "TEL:+44 ..."), a time's not (10:30 ...)
    [0-9 ().\-/]{5,23}[0-9]
    (?:[ ]?(?:x|ext\.?|extension)[ ]?[0-9]{1,6})?
    (?![\w-]|[./:][0-9])""",
    re.VERBOSE,
)
_EXTENSION = re.compile(r"[ ]?(?:x|ext\.?|extension)[ ]?[0-9]{1,6}\Z")
_GROUPS = re.compile(r"[0-9]+")
_DATE_INSIDE = re.compile(
    r"(?<![0-9])(?:[0-9]{4}[-./][0-9]{1,2}[-./][0-9]{1,2}|[0-9]{1,2}[-./][0-9]{1,2}[-./](?:19|20)[0-9]{2})(?![0-9])"
)
# Dates, an SSN, a ZIP+4 code or a Brazilian CEP, a year-suffixed standard ("0208-1990") or odd separator
# runs are not phones.
_NOT_PHONE = re.compile(
    r"\A(?:[0-9]{3}-[0-9]{2}-[0-9]{4}|[0-9]{5}-[0-9]{3,4}|[0-9]+-(?:19|20)[0-9]{2})\Z"
    r"|[ ]{2}|[-./][-./ ]|[ ][-./]"
)
_ASCENDING = "01234567890123456789"
_DESCENDING = "98765432109876543210"
_PHONE_LABEL = boundary_label(
    r"phone|phone number|contact number|tel|tel\.|telephone|mobile|cell|cellphone|fax|handy|telefon|"
    r"telefonnummer|mobil|mobilnummer|tél|tél\.|téléphone|portable|telefono|cellulare|cell\.|"
    r"teléfono|movil|móvil|telefoon|telefoonnummer|mobiel|gsm|komórka|numer telefonu|nr tel|tel\. kom|"
    # a number given in a sentence: "reach me at 0278946115"
    r"reach me at|reach me on|call me at|call me on|text me at|text me on|ring me on|my number is|"
    r"erreichbar unter|ruf mich an unter|joignable au|appelez-moi au|chiamami al|raggiungibile al|"
    r"llámame al|llamame al|bel me op|zadzwoń pod|dzwoń pod"
)
_MAX_CANDIDATES = 4_000
_TRIGGERS = ("spaced", "separated", "pairs", "plus", "run")
_REACH = 48  # a number with its extension and look-ahead
_LONGEST = 25  # characters of a number before its extension: a trigger is at most this far in
# Regions tried for numbers written without an international prefix, by how the number starts.
_TRUNK_ZERO = ("GB", "DE", "FR", "IT", "NL", "AT", "BE", "CH")
_FREE_GROUPING = frozenset({None, "DE", "NL"})  # international form, and regions with free area-code lengths


def count_phones(view: TextView, limit: int = MAX_FINDINGS) -> int:
    """Count telephone numbers that libphonenumber finds valid, in international or national form."""
    found = 0
    candidates = view.finditer(_PHONE, view.windows(_TRIGGERS, _LONGEST), _REACH)
    for examined, match in enumerate(candidates):
        if found >= limit or examined >= _MAX_CANDIDATES:
            break
        core = _EXTENSION.sub("", match.group()).strip()
        digits = "".join(_GROUPS.findall(core))
        if (
            not _decimal_follows(view.text, match.end(), core)
            and _plausible_shape(core, digits)
            and not view.in_iban_shape(match.start())
            and _accepted(view, match, core, digits)
        ):
            found += 1
    return found


def _decimal_follows(text: str, end: int, core: str) -> bool:
    """Return whether digits grouped by blanks go on past a comma: "1 234 567,89" is an amount.

    A comma before a digit ends a phone number only where the number has other separators ("+1
    772-354-6398,977" is a CSV row).
    """
    comma_digit = text[end : end + 1] == "," and text[end + 1 : end + 2].isdigit()
    return comma_digit and core.replace(" ", "").isdigit()


def _plausible_shape(core: str, digits: str) -> bool:
    """Reject digit strings that are dates, IP addresses, versions, SSNs or repeated digits."""
    if not 7 <= len(digits) <= 15 or len(set(digits)) == 1 or digits.count("0") * 2 > len(digits):
        return False
    if digits in _ASCENDING or digits in _DESCENDING or _NOT_PHONE.search(core) or _DATE_INSIDE.search(core):
        return False
    if "." in core and not core.startswith("+"):
        groups = [len(g) for g in _GROUPS.findall(core)]
        # a decimal number has two groups, an IP address four short ones, a version a one-digit group
        return min(groups) >= 2 and 3 <= len(groups) <= 5 and not (len(groups) == 4 and max(groups) <= 3)
    return True


def _accepted(view: TextView, match: re.Match[str], core: str, digits: str) -> bool:
    """Return whether the candidate is a valid number (bare digit runs also need a label or column)."""
    international = core.startswith("+") or digits.startswith("00")
    if core.isdigit() and not view.label_before(match.start(), _PHONE_LABEL):
        return False
    if international:
        return _valid(core if core.startswith("+") else "+" + core.lstrip()[2:], None)
    return any(_valid(core, region) for region in _regions(digits))


def _regions(digits: str) -> tuple[str, ...]:
    """Return the regions whose national numbering could produce these digits."""
    if digits.startswith("0"):
        return _TRUNK_ZERO
    regions: list[str] = []
    if len(digits) == 10 or (len(digits) == 11 and digits.startswith("1")):
        regions.append("US")
    if digits.startswith("3"):
        regions.append("IT")
    if len(digits) == 9:
        regions.extend(("ES", "PL") if digits[0] in "6789" else ("PL",))
    return tuple(regions)


@lru_cache(maxsize=4096)
def _valid(number: str, region: str | None) -> bool:
    """Return whether libphonenumber's matcher finds a valid number spanning ``number``.

    National numbers must also be grouped the way the region writes them (``339-23819-76`` is a part
    number, not a US phone), except where the trunk ``0`` is the cue and grouping is free in practice.
    """
    leniency = (
        phonenumbers.Leniency.VALID if region in _FREE_GROUPING else phonenumbers.Leniency.STRICT_GROUPING
    )
    matcher = phonenumbers.PhoneNumberMatcher(number, region, leniency=leniency)
    digits = len("".join(_GROUPS.findall(number)))
    return any(len("".join(_GROUPS.findall(m.raw_string))) >= digits - 1 for m in matcher)
