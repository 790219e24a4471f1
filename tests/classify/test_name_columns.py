"""Name columns are found through the trigger search: every key that may head one is looked for.

The name detector reads only tables whose header row holds the last word of a person key (see
``agent.classify.pii.person_keys``); these tests hold every key, in every delimiter, to that.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.classify.detectors import detect
from agent.classify.pii.person_keys import FULL, QUALIFIED, SINGLE

_SINGLE_KEYS = SINGLE.split("|")
_FULL_KEYS = [
    key for key in FULL.split("|") if len(key.split()[-1]) >= 3
]  # "fn" is a vCard line, not a column
_QUALIFIED_KEYS = [f"{q} name" for q in QUALIFIED.split("|")]


def _table(header: str, value: str, delim: str, title_lines: int = 0) -> str:
    """A table with ``header`` over two data rows, under ``title_lines`` lines of title."""
    titles = "".join(f"Export {i + 1} of the CRM\n" for i in range(title_lines))
    rows = [delim.join(("id", header, "qty")), delim.join(("1", value, "2")), delim.join(("2", value, "3"))]
    return titles + "\n".join(rows) + "\n"


@pytest.mark.parametrize("key", _FULL_KEYS + _QUALIFIED_KEYS)
def test_every_full_name_key_heads_a_name_column(key):
    """A column headed by any full-name key (in any language) counts the full names under it."""
    assert detect(_table(key.title(), "Jane Doe", ";")).get("person_name", 0) >= 1, key


@pytest.mark.parametrize("key", _SINGLE_KEYS)
def test_every_single_name_key_heads_a_name_column(key):
    """A column headed by a first- or family-name key counts single names under it."""
    assert detect(_table(key, "Kowalski", "\t")).get("person_name", 0) >= 1, key


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(_FULL_KEYS + _QUALIFIED_KEYS + _SINGLE_KEYS),
    st.sampled_from(["\t", ";", "|", ","]),
    st.integers(0, 5),
    st.sampled_from(["{}", '"{}"', "{} (EN)", " {} ", "*{}*"]),
)
def test_a_name_column_is_found_under_title_lines(key, delim, title_lines, form):
    """Up to five title lines over the header row, quoted or qualified header cells: still found."""
    header = form.format(key.replace(" ", "_"))
    assert detect(_table(header, "Jane Doe", delim, title_lines)).get("person_name", 0) >= 1


def test_code_with_name_variables_is_not_a_table():
    """Source code full of `name` and commas holds no name column."""
    code = "\n\n".join(f"def f{i}(name, value):\n    return name, value\n" for i in range(50))
    assert "person_name" not in detect(code)
