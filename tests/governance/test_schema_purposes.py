"""The build fails when the wire schemas and the declared purposes disagree about a field."""

from __future__ import annotations

import typing

from agent.config import bundled_rules_dir
from agent.governance import WIRE_SCHEMAS, Purposes
from agent.minimize.wire import WIRE_FIELDS, Record
from cloud.routes import SearchRequest

BUNDLED = Purposes.load(bundled_rules_dir() / "purposes.toml")


def _declared(kind: str) -> set[str]:
    return {f for p in BUNDLED.purposes.values() for f in p.payloads.get(kind, ())}


def test_every_schema_field_is_declared_by_a_purpose():
    """Each field of each wire schema is carried by some declared purpose."""
    missing = {kind: sorted(set(fields) - _declared(kind)) for kind, fields in WIRE_SCHEMAS.items()}
    assert not any(missing.values()), f"declare these fields in rules/purposes.toml: {missing}"


def test_no_purpose_declares_a_field_the_schema_lacks():
    """Each field a purpose declares exists in the schema of that payload kind."""
    extra = {
        (p.name, kind): sorted(set(fields) - set(WIRE_SCHEMAS.get(kind, ())))
        for p in BUNDLED.purposes.values()
        for kind, fields in p.payloads.items()
    }
    assert not any(extra.values()), f"fields no schema has: {extra}"


def test_protection_carries_exactly_the_verdict_record():
    """The protection purpose declares exactly the fields of wire.Record, in schema v1."""
    assert set(BUNDLED.get("protection").payloads["verdicts"]) == set(WIRE_FIELDS)
    assert WIRE_SCHEMAS["verdicts"] == Record.__struct_fields__


def test_reputation_search_schema_is_the_receivers():
    """The lookup kind lists the fields of the receiver's strict SearchRequest."""
    assert WIRE_SCHEMAS["reputation_search"] == SearchRequest.__struct_fields__
    assert set(BUNDLED.get("protection").payloads["reputation_search"]) == set(
        SearchRequest.__struct_fields__
    )


def test_record_purposes_are_declared_with_their_kind():
    """Every purpose a verdict record may name is declared and carries the verdicts kind."""
    names = typing.get_args(typing.get_type_hints(Record)["purpose"])
    assert names, "Record.purpose should be a Literal of purpose names"
    for name in names:
        assert "verdicts" in BUNDLED.get(name).payloads
