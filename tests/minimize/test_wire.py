"""The wire schema is strict: unknown fields, wrong types and anything personal-shaped are refused."""

from __future__ import annotations

import contextlib
import json

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.minimize import Record, WireDetection, decode_batch, decode_record, encode_record

GOOD = {
    "schema": 1,
    "record_id": "0" * 32,
    "purpose": "protection",
    "pseudonym": "a" * 32,
    "time_bucket": "2026-11-29T15:00Z",
    "verdict": "malicious",
    "detections": [{"name": "EICAR_Test_File", "source": "yara"}],
    "kind": "text",
    "size_bucket": 128,
    "sha256": "b" * 64,
    "engine_version": "endpoint-agent-engine/1 yara-x/1.0",
    "rules_version": "0123456789abcdef",
}


def _enc(obj) -> bytes:
    return json.dumps(obj).encode()


def test_a_good_record_round_trips():
    """A valid record decodes and encodes back to the same JSON."""
    record = decode_record(_enc(GOOD))
    assert json.loads(encode_record(record)) == GOOD


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("path", "/home/alice/report.docx"),
        ("file_name", "report.docx"),
        ("hostname", "alice-laptop"),
    ],
)
def test_unknown_fields_are_rejected(field, value):
    """A record with a field outside the schema is refused."""
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        decode_record(_enc({**GOOD, field: value}))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("schema", 2),
        ("record_id", "not-hex"),
        ("purpose", "marketing"),
        ("pseudonym", "alice@example.com"),
        ("time_bucket", "2026-11-29T15:42:17Z"),
        ("verdict", "clean"),
        ("kind", "spreadsheet"),
        ("size_bucket", 100),
        ("size_bucket", "128"),
        ("sha256", "B" * 64),
        ("detections", [{"name": "/home/alice/x", "source": "yara"}]),
        ("detections", [{"name": "X", "source": "yara", "member": "inner/secret.txt"}]),
        ("detections", [{"name": "X", "source": "cloud"}]),
        ("rules_version", "v1"),
    ],
)
def test_wrong_values_are_rejected(field, value):
    """Each field is type- and pattern-checked: exact times, paths, e-mails and odd sizes do not fit."""
    with pytest.raises(msgspec.ValidationError):
        decode_record(_enc({**GOOD, field: value}))


def test_batches_are_bounded():
    """A batch of more than 1,000 records is refused."""
    assert len(decode_batch(_enc([GOOD] * 3))) == 3
    with pytest.raises(msgspec.ValidationError):
        decode_batch(_enc([GOOD] * 1001))


@given(st.binary(max_size=2000))
def test_garbage_raises_only_msgspec_errors(data):
    """Arbitrary bytes either decode to a valid record or raise a msgspec error, nothing else."""
    with contextlib.suppress(msgspec.ValidationError, msgspec.DecodeError):
        decode_record(data)


@given(
    st.dictionaries(
        st.sampled_from(sorted(GOOD)),
        st.one_of(st.none(), st.integers(), st.text(), st.lists(st.text())),
        max_size=6,
    )
)
def test_mutated_records_never_pass_with_bad_values(changes):
    """Mutating fields of a good record either still validates (then re-encodes identically) or raises."""
    candidate = {**GOOD, **changes}
    try:
        record = decode_record(_enc(candidate))
    except msgspec.ValidationError:
        return
    assert isinstance(record, Record)
    assert decode_record(encode_record(record)) == record


def test_detection_struct_has_no_member_field():
    """The wire detection carries a name and a source only: never an archive member path."""
    assert WireDetection.__struct_fields__ == ("name", "source")
