"""Dates of birth: a plausible date right after a birth-date label, or in a birth-date table column.

Dates are everywhere in logs, so the labels are found first (from their trigger words) and dates are only
looked for just after them and in the cells of birth-date columns.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import re
import time
from typing import TYPE_CHECKING

from agent.classify.pii.text import BEFORE, MAX_FINDINGS, boundary_label, merge_spans, words

if TYPE_CHECKING:
    from agent.classify.pii.text import TextView

__all__ = ["MONTHS", "count_birth_dates", "plausible_date"]

_DAY_SECONDS = 86_400

# Every form starts with a digit (the day or the year), matched before the look-behind so that the regex
# engine can skip ahead fast; for "March 15, 1985" the month is read from the text just before.
_DATE = re.compile(
    r"""[0-9](?<![0-9].)(?:
       (?P<iso>[0-9]{3}[-/.][0-9]{1,2}[-/.][0-9]{1,2})
      |(?P<num>[0-9]?[-/. ][0-9]{1,2}[-/. ](?:19|20)?[0-9]{2})
      |(?P<compact>[0-9]{7})
      |(?P<dmy>[0-9]?(?:st|nd|rd|th|er|º)?\.?[ -]?(?:de[ ]|of[ ])?[^\W\d_]{3,12}\.?,?[ -]
        (?:de[ ])?(?:19|20)[0-9]{2})
      |(?P<mdy>[0-9]?(?:st|nd|rd|th)?,?[ ](?:19|20)[0-9]{2})
    )(?![0-9])""",
    re.VERBOSE,
)
_DATE_REACH = 40  # the longest date ("15th de septiembre, de 1985") and its look-ahead
_MONTH_SPAN = 16  # "March 15, 1985" counts from the month, up to this far before the day digits
_TRIGGER_SPAN = 24  # a label's trigger word starts at most this far into it and ends this far before its end
_NUMBER = re.compile(r"[0-9]+")
_SENTENCE_END = re.compile(r"[.!?]\s")
# What may stand between a label and its date: punctuation, a format hint, a little word ("born on").
_GAP = re.compile(
    r"[\s:=\"'|,;()\[\]<>*.\-]*(?:(?:on|am|le|el|il|op|dnia|the|den|du|in|a|à)[\s:.,]+)?"
    r"(?:\([^)\n]{0,20}\)[\s:=\"'|,;.\-]*)?"
)
_WORD = re.compile(r"[^\W\d_]{3,12}")
_MONTH_BEFORE = re.compile(r"([^\W\d_]{3,12})\.?[ ]\Z")
_LABEL = boundary_label(
    r"dob|d\.o\.b|d\.o\.b\.|date of birth|birth date|birthdate|birthday|born|born on|bday|"
    r"geburtsdatum|geburtstag|geboren|geboren am|geb|geb\.|geb\. am|geb\. datum|geb\.datum|"
    r"date de naissance|naissance|date de naiss\.|naiss\.|né le|née le|né\(e\) le|né\(e\)|né|née|"
    r"data di nascita|data nascita|nascita|nato il|nata il|nato a|nata a|"
    r"fecha de nacimiento|nacimiento|fecha nac|fecha nac\.|f\. nacimiento|f\. nac\.|"
    r"nacido el|nacida el|nacido|nacida|"
    r"geboortedatum|geboren op|"
    r"data urodzenia|urodzony|urodzona|urodzony dnia|urodzona dnia|ur\.|"
    r"data de nascimento|data nasc\.|data nasc|nascimento|nascido em|nascida em|"
    r"födelsedatum|född|fødselsdato|født|datum narození|narozen|narozena"
)
_MONTH_NAMES = (
    "january february march april may june july august september october november december "
    "januar jänner februar märz maerz april mai juni juli august september oktober november dezember "
    "janvier février fevrier mars avril mai juin juillet août aout septembre octobre novembre décembre "
    "gennaio febbraio marzo aprile maggio giugno luglio agosto settembre ottobre novembre dicembre "
    "enero febrero marzo abril mayo junio julio agosto septiembre setiembre octubre noviembre diciembre "
    "januari februari maart april mei juni juli augustus september oktober november december "
    "styczeń stycznia luty lutego marzec marca kwiecień kwietnia maj maja czerwiec czerwca lipiec lipca "
    "sierpień sierpnia wrzesień września październik października listopad listopada grudzień grudnia"
)
MONTHS = words(_MONTH_NAMES) | words(
    "jan feb mar apr jun jul aug sep sept oct nov dec mär okt dez janv févr fevr avr juil déc gen mag "
    "giu lug ago set ott dic ene abr ago dic mrt mei sty lut kwi cze lip sie wrz paź lis gru"
)


def count_birth_dates(view: TextView, limit: int = MAX_FINDINGS) -> int:
    """Count plausible dates (year 1900 to now) written just after a birth-date label."""
    labels = _label_spans(view)
    if not labels:
        return 0
    cells = view.column_spans(_LABEL, (start for start, _ in labels))
    windows = merge_spans(sorted([(end, start + BEFORE + _MONTH_SPAN) for start, end in labels] + cells))
    found = 0
    for match in view.finditer(_DATE, windows, _DATE_REACH):
        if found >= limit:
            break
        start = _date_start(view.text, match)
        if start >= 0 and (_in_spans(cells, start) or _labelled(view, start)):
            found += 1
    return found


def _in_spans(spans: list[tuple[int, int]], pos: int) -> bool:
    """Return whether ``pos`` falls in one of the sorted, disjoint ``spans`` (cells of a column)."""
    index = bisect.bisect_right(spans, pos, key=lambda span: span[0]) - 1
    return index >= 0 and spans[index][0] <= pos < spans[index][1]


def _label_spans(view: TextView) -> list[tuple[int, int]]:
    """Return the ``(start, end)`` of the birth-date labels around the label triggers, in order."""
    spans: set[tuple[int, int]] = set()
    for hit in view.hits.get("birth", ()):
        for label in _LABEL.finditer(view.lower, max(0, hit - _TRIGGER_SPAN), hit + _TRIGGER_SPAN):
            if label.start() <= hit < label.end():
                spans.add(label.span())
    return sorted(spans)


def _labelled(view: TextView, start: int) -> bool:
    """Return whether the date at ``start`` heads a birth-date column or directly follows such a label."""
    last = None
    for last in _LABEL.finditer(view.lower, max(0, start - BEFORE), start):  # noqa: B007 - keep the last
        pass
    if last is not None:
        gap = view.lower[last.end() : start]
        if _GAP.fullmatch(gap) is not None and _SENTENCE_END.search(gap) is None:
            return True
    return view.header_is(start, _LABEL)


def _date_start(text: str, match: re.Match[str]) -> int:
    """Return where a real calendar date starts (trying day-month and month-day order), or -1."""
    kind, value = match.lastgroup, match.group()
    nums = [int(n) for n in _NUMBER.findall(value)]
    if kind == "compact":
        ok = plausible_date(int(value[:4]), int(value[4:6]), int(value[6:]))
    elif kind == "iso":
        ok = plausible_date(nums[0], nums[1], nums[2])
    elif kind == "num":
        year = nums[2] + (1900 if nums[2] < 100 else 0)
        ok = plausible_date(year, nums[1], nums[0]) or plausible_date(year, nums[0], nums[1])
    elif kind == "dmy":
        word = _WORD.search(value)
        ok = word is not None and word.group().lower() in MONTHS and plausible_date(nums[1], 1, nums[0])
    else:
        month = _MONTH_BEFORE.search(text, max(0, match.start() - 15), match.start())
        if month is None or month.group(1).lower() not in MONTHS or not plausible_date(nums[1], 1, nums[0]):
            return -1
        return month.start()
    return match.start() if ok else -1


def plausible_date(year: int, month: int, day: int) -> bool:
    """Return whether the date exists and its year is between 1900 and the current year."""
    if not 1900 <= year <= _year_of_day(int(time.time() // _DAY_SECONDS)):
        return False
    try:
        dt.date(year, month, day)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=2)
def _year_of_day(day: int) -> int:
    """The UTC year of day ``day`` since the epoch (asked once a day, not once per date)."""
    return dt.datetime.fromtimestamp(day * _DAY_SECONDS, dt.UTC).year
