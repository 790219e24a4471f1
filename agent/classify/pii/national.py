"""National identification numbers, validated with python-stdnum.

Self-validating formats with letters or a two-digit key (IT codice fiscale, ES DNI and NIE, FR NIR) count
on their own. Plain digit strings with a weak or no checksum (DE IdNr, PL PESEL, NL BSN, US SSN) and the
UK NINO count only with a label nearby or as a labelled table column; a PESEL also counts when its
encoded birth date is written next to it.
"""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING

from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.pl import pesel
from stdnum.us import ssn

from agent.classify.pii.text import MAX_FINDINGS, boundary_label

if TYPE_CHECKING:
    from agent.classify.pii.text import TextView

__all__ = ["count_national_ids"]

# The first character is matched before the look-behind so that the regex engine can skip ahead fast;
# each group holds the rest of the value, ``match.group()`` the whole of it.
_LETTER_ID = re.compile(
    r"""[A-Z](?<![A-Za-z0-9].)(?:
      (?P<cf>[A-Z]{5}[0-9LMNP-V]{2}[A-EHLMPR-T][0-9LMNP-V]{2}[A-Z][0-9LMNP-V]{3}[A-Z])
     |(?P<nie>(?<=[XYZ])-?[0-9]{7}-?[A-Z])
     |(?P<nino>[A-Z][ ]?[0-9]{2}[ ]?[0-9]{2}[ ]?[0-9]{2}[ ]?[A-D])
    )(?![A-Za-z0-9])""",
    re.VERBOSE,
)
_DIGIT_ID = re.compile(
    r"""[0-9](?<![A-Za-z0-9].)(?:
      (?P<dni>[0-9]{7}-?[A-Z])
     |(?P<nir>(?<=[12])[ ]?[0-9]{2}[ ]?[0-9]{2}[ ]?(?:[0-9]{2}|2[AB])[ ]?[0-9]{3}[ ]?[0-9]{3}[ ]?[0-9]{2})
     |(?P<d11>[0-9][ ]?[0-9]{3}[ ]?[0-9]{3}[ ]?[0-9]{3})
     |(?P<d9>[0-9]{2}[- ]?[0-9]{2}[- ]?[0-9]{4}|[0-9]{3}\.[0-9]{2}\.[0-9]{3})
    )(?![A-Za-z0-9]|[.,/-][0-9])""",
    re.VERBOSE,
)
_LABEL = boundary_label(
    r"ssn|ss#|social security|social security number|soc sec|social sec|ss no|"
    r"bsn|burgerservicenummer|sofinummer|sofi nummer|"
    r"pesel|numer pesel|nr pesel|"
    r"steuer id|steuer idnr|steuerid|steueridentifikationsnummer|steuerliche identifikationsnummer|"
    r"identifikationsnummer|idnr|id nr|tax id|tax identification number|tin|"
    r"nino|national insurance|national insurance number|ni number|ni no|insurance number|"
    r"nir|insee|sécurité sociale|securite sociale|numéro de sécu|n° ss|"
    r"codice fiscale|national id|national identification number|id number|identity number|personal number"
)
# Shapes every value has: a codice fiscale's six letters and year, a NINO's letters and digits, long runs
# of digits, groups of three around a blank, pairs (a spaced NINO), an SSN's 3-2-4 groups.
_LETTER_TRIGGERS = ("fiscal", "iban", "run", "pairs")
_DIGIT_TRIGGERS = ("run", "spaced", "ssn")
_LONGEST = 24
_BAD_NINO_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})
_NINO_FIRST_BAD = frozenset("DFIQUV")
_NINO_SECOND_BAD = frozenset("DFIQUVO")
_PESEL_DATE_SPAN = 300


def count_national_ids(view: TextView, limit: int = MAX_FINDINGS) -> int:
    """Count national identification numbers (see the module docstring for what needs a label)."""
    found = 0
    letters = view.finditer(_LETTER_ID, view.windows(_LETTER_TRIGGERS, _LONGEST), _LONGEST + 4)
    digits = view.finditer(_DIGIT_ID, view.windows(_DIGIT_TRIGGERS, _LONGEST), _LONGEST + 4)
    for match in itertools.chain(letters, digits):
        if found >= limit:
            break
        kind = match.lastgroup or ""
        value = match.group()
        if (
            _STRONG.get(kind, _never)(value)
            or (_WEAK.get(kind, _never)(value) and view.label_before(match.start(), _LABEL))
            or (kind == "d11" and pesel.is_valid(value) and _pesel_date_nearby(view, match))
        ):
            found += 1
    return found


def _never(_value: str) -> bool:
    return False


def _is_nino(value: str) -> bool:
    """Return whether the value follows the NINO prefix and suffix rules (stdnum has no NINO module)."""
    compact = value.replace(" ", "")
    prefix = compact[:2]
    return not (prefix in _BAD_NINO_PREFIXES or prefix[0] in _NINO_FIRST_BAD or prefix[1] in _NINO_SECOND_BAD)


def _weak_eleven(value: str) -> bool:
    """Return whether eleven digits are a valid DE IdNr or PL PESEL."""
    return idnr.is_valid(value) or pesel.is_valid(value)


def _weak_nine(value: str) -> bool:
    """Return whether nine digits are a valid US SSN or NL BSN."""
    return ssn.is_valid(value) or bsn.is_valid(value)


def _pesel_date_nearby(view: TextView, match: re.Match[str]) -> bool:
    """Return whether the birth date encoded in a PESEL is written near it."""
    born = pesel.get_birth_date(match.group())
    lo, hi = max(0, match.start() - _PESEL_DATE_SPAN), match.end() + _PESEL_DATE_SPAN
    window = view.text[lo:hi]
    return any(born.strftime(fmt) in window for fmt in ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y", "%d-%m-%Y"))


_STRONG = {
    "cf": codicefiscale.is_valid,
    "nie": nie.is_valid,
    "dni": dni.is_valid,
    "nir": nir.is_valid,
}
_WEAK = {
    "nino": _is_nino,
    "d11": _weak_eleven,
    "d9": _weak_nine,
}
