"""The cheap test before reading a paragraph as a table never drops a table the full reading finds."""

from __future__ import annotations

import bisect

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.classify.pii import layout
from agent.classify.pii.text import TextView


def _every_candidate(text: str) -> tuple[layout.Table, ...]:
    """The tables found when every candidate paragraph is read in full (no prefilter)."""
    starts = [0] if layout.TABLE_START.match(text) else []
    starts += [m.end() for m in layout.PARAGRAPH_TABLE.finditer(text)]
    paragraphs = [0] + [m.end() for m in layout.PARAGRAPH.finditer(text)]
    found = []
    for start in starts:
        index = bisect.bisect_right(paragraphs, start) - 1
        end = paragraphs[index + 1] if index + 1 < len(paragraphs) else len(text)
        table = layout.table_at(text, paragraphs[index], end)
        if table is not None:
            found.append(table)
    return tuple(found)


_CELLS = st.sampled_from(
    ["name", "E-Mail", " Date of birth ", '"Phone"', "*IBAN*", "`id`", "a b", "x[0]", "{", "", " ", "Nº", "1"]
)
_DELIMS = st.sampled_from(["\t", ";", "|", ",", ", ", '","'])
_LINES = st.one_of(
    st.builds(lambda cells, delim: delim.join(cells), st.lists(_CELLS, min_size=1, max_size=5), _DELIMS),
    st.sampled_from(["", " ", "\t", "\r", "func f(a, b int) {", "\tx, y := 1, 2", "// note, here", "}"]),
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(_LINES, min_size=1, max_size=12), st.sampled_from(["\n", "\r\n"]))
def test_prefilter_keeps_every_table(lines, newline):
    text = newline.join(lines)
    assert TextView(text).tables == _every_candidate(text)


def test_tab_indented_code_is_not_read_as_tables():
    code = "\n\n".join(
        "// f does a thing.\nfunc f(xs []int) (int, error) {\n\treturn xs[0], nil\n}" for _ in range(20)
    )
    starts = [m.end() for m in layout.PARAGRAPH_TABLE.finditer(code)]
    assert starts  # the regex alone takes them for tables...
    assert not any(layout.could_head_table(code, start) for start in starts)  # ...the prefilter does not
    assert TextView(code).tables == ()
