"""``key: value`` pairs whose key is a known phrase (``Full name:``, ``"date_of_birth":``, ``Anschrift:``).

The colons to look at come from the caller's triggers (a colon before a capital, the first colon after
an address word), and the key before each is read cheaply: the letters and separators right before the
colon are matched on the reversed text (an anchored, linear match) and the longest known phrase among
their last words is looked up in a dictionary.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.classify.pii.text import MAX_CANDIDATES

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from agent.classify.pii.text import TextView

__all__ = ["Key", "Keys", "keyed", "normalise"]

_KEY_SPAN = 48
_REACH = _KEY_SPAN + 40  # from a word of a key to its colon: the key's rest and a hint "(dd/mm/yyyy)"
_KEY_PUNCT = frozenset(")\"'* \t")  # what may end a key besides a letter
_REVERSED_KEY = re.compile(r"[^\W\d_]+(?:[ \t_.\-]{1,3}[^\W\d_]+)*")
_WORD = re.compile(r"[^\W\d_]+")
_SEPARATORS = re.compile(r"[\s_.\-]+")
_TRAILING = " \t\"'*"


def normalise(phrase: str) -> str:
    """Return a key phrase in lower case with single spaces between its words."""
    return _SEPARATORS.sub(" ", phrase.lower()).strip()


class Keys:
    """A set of key phrases, each mapped to the kind of value it labels."""

    def __init__(self, phrases: Iterable[tuple[str, str]]) -> None:
        self.kinds = {normalise(phrase): kind for phrase, kind in phrases}
        # a key written in camelCase or run together reads as one word: "firstName", "fullname"
        self.kinds |= {key.replace(" ", ""): kind for key, kind in self.kinds.items() if " " in key}
        self.max_words = max(len(phrase.split()) for phrase in self.kinds)
        self.last_words = frozenset(phrase.rsplit(" ", 1)[-1] for phrase in self.kinds)


@dataclass(frozen=True, slots=True)
class Key:
    """A known key before a colon: its kind, phrase, where it starts and where its value starts."""

    kind: str
    phrase: str
    start: int
    value: int


def colons_after(lower: str, hits: Iterable[int]) -> list[int]:
    """Return, in order, the first colon after each hit within a key's reach (a key holds no colon)."""
    found = {lower.find(":", hit, hit + _REACH) for hit in hits}
    found.discard(-1)
    return sorted(found)


def keyed(view: TextView, keys: Keys, colons: Iterable[int]) -> Iterator[Key]:
    """Yield the keys among ``keys`` that end just before the given ``colons`` (longest phrase wins).

    A colon after a digit (times, ports, drive letters) is skipped without a look-up; at most
    ``MAX_CANDIDATES`` colons are examined.
    """
    lower = view.lower
    for colon in itertools.islice(
        (c for c in colons if c > 0 and (lower[c - 1].isalpha() or lower[c - 1] in _KEY_PUNCT)),
        MAX_CANDIDATES,
    ):
        key = _key_at(lower, colon, keys)
        if key is not None:
            yield key


def _last_word(segment: str) -> str:
    """Return the run of letters at the end of ``segment``."""
    start = len(segment)
    while start > 0 and segment[start - 1].isalpha():
        start -= 1
    return segment[start:]


def _key_at(lower: str, colon: int, keys: Keys) -> Key | None:
    """Return the known key that ends just before ``colon``, if any."""
    lo = max(0, colon - _KEY_SPAN)
    segment = lower[lo:colon].rstrip(_TRAILING)
    if segment.endswith(")"):  # a hint after the key: "Date of birth (dd/mm/yyyy):"
        opening = segment.rfind("(", max(0, len(segment) - 32))
        segment = segment[:opening].rstrip(_TRAILING) if opening >= 0 else segment
    end = lo + len(segment)
    if _last_word(segment) not in keys.last_words:
        return None
    chain = _REVERSED_KEY.match(lower[lo:end][::-1])
    if chain is None:
        return None
    words = [(m.start(), m.group()) for m in _WORD.finditer(lower, end - chain.end(), end)]
    for count in range(min(len(words), keys.max_words), 0, -1):
        phrase = " ".join(word for _, word in words[-count:])
        kind = keys.kinds.get(phrase)
        if kind is not None:
            return Key(kind, phrase, words[-count][0], colon + 1)
    return None
