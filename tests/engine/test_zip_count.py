"""The declared entry count of a zip is read from its end record, before any listing."""

from __future__ import annotations

import io
import zipfile

from hypothesis import given
from hypothesis import strategies as st

from agent.engine.archives import zip_entry_count


def _zip(n: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(n):
            zf.writestr(f"m{i}.txt", b"")
    return buf.getvalue()


def test_the_count_is_what_the_end_record_declares():
    """A zip of 37 members declares 37; an empty one 0."""
    assert zip_entry_count(_zip(37)) == 37
    assert zip_entry_count(_zip(0)) == 0


def test_a_zip64_end_record_is_followed():
    """A count of 0xFFFF means: read the zip64 end record, which holds the real number."""
    data = bytearray(_zip(3))
    end = data.rfind(b"PK\x05\x06")
    z64 = end  # the zip64 end record goes where the classic one was, the classic one after it
    record = (
        b"PK\x06\x06"
        + (44).to_bytes(8, "little")
        + bytes(20)
        + (70_000).to_bytes(8, "little") * 2
        + bytes(16)
    )
    locator = b"PK\x06\x07" + bytes(4) + z64.to_bytes(8, "little") + (1).to_bytes(4, "little")
    eocd = bytes(data[end : end + 22])
    eocd = eocd[:8] + (0xFFFF).to_bytes(2, "little") * 2 + eocd[12:]
    patched = bytes(data[:end]) + record + locator + eocd
    assert zip_entry_count(patched) == 70_000


@given(st.binary(max_size=4096))
def test_garbage_gives_a_number_or_none_and_never_raises(blob):
    """Any bytes: an int or None, no exception."""
    result = zip_entry_count(blob)
    assert result is None or result >= 0
