"""The last field of a line, read from its end, is the field a full split at the separators gives."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.classify.pii.address import _last_segment

# The reference: split the whole line at tabs, ``;``, ``|`` and commas not followed by a blank.
_SEPARATORS = re.compile(r"[ \t]*(?:[;|\t]|,(?![ ]))[ \t]*")


def _reference(line: str) -> str | None:
    fields = [f for f in _SEPARATORS.split(line.rstrip("\r")) if f.strip(' \t",')]
    return fields[-1] if fields else None


def _value(field: str | None) -> str | None:
    return None if field is None else field.strip(" \t\"',;")


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=" \t;|,\"'ab1\r.xé", max_size=40))
def test_last_field_matches_a_full_split(line):
    assert _value(_last_segment(line)) == _value(_reference(line))


def test_examples():
    assert _last_segment('42,Jane Doe,"12 High Street",') == '"12 High Street"'
    assert _last_segment("Hauptstr. 5; ") == "Hauptstr. 5"
    assert _last_segment("78, rue de Rivoli") == "78, rue de Rivoli"  # ", " joins words, not fields
    assert _last_segment(' ,;\t"') is None
