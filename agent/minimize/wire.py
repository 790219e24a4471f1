"""Wire schema v1: the only shape in which anything about a scan leaves the device.

A strict msgspec struct: unknown fields are rejected, every string is pattern-checked, and there is
no field that could hold a path, file name, user name, host name, content, personal value or exact
time. The reference cloud decodes with :func:`decode_batch`, so both ends share one definition.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

__all__ = [
    "SCHEMA_VERSION",
    "WIRE_FIELDS",
    "Record",
    "WireDetection",
    "decode_batch",
    "decode_record",
    "encode_record",
]

SCHEMA_VERSION: Literal[1] = 1
_HEX32 = r"^[0-9a-f]{32}$"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
_VERSION = r"^[A-Za-z0-9_.\-/ ]{1,64}$"

Kind = Literal["executable", "script", "document", "archive", "image", "text", "other"]


class WireDetection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A rule or signature name and the kind of source that produced it; never a member path."""

    name: Annotated[str, msgspec.Meta(pattern=_NAME)]
    source: Literal["yara", "hash", "limit", "reputation"]


class Record(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One minimized verdict, schema v1."""

    schema: Literal[1]
    record_id: Annotated[str, msgspec.Meta(pattern=_HEX32)]
    purpose: Literal["protection"]
    pseudonym: Annotated[str, msgspec.Meta(pattern=_HEX32)]
    time_bucket: Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:00Z$")]
    verdict: Literal["malicious", "suspicious", "unscanned"]
    detections: Annotated[list[WireDetection], msgspec.Meta(max_length=64)]
    kind: Kind | None = None
    size_bucket: Annotated[int, msgspec.Meta(ge=1, le=1 << 62)] | None = None
    sha256: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")] | None = None
    engine_version: Annotated[str, msgspec.Meta(pattern=_VERSION)]
    rules_version: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{16}$")]

    def __post_init__(self) -> None:
        if self.size_bucket is not None and self.size_bucket & (self.size_bucket - 1):
            raise ValueError("size_bucket must be a power of two")


WIRE_FIELDS: tuple[str, ...] = Record.__struct_fields__

_ENCODER = msgspec.json.Encoder()
_RECORD = msgspec.json.Decoder(Record)
_BATCH = msgspec.json.Decoder(Annotated[list[Record], msgspec.Meta(max_length=1000)])


def encode_record(record: Record) -> bytes:
    """Encode one record as compact JSON."""
    return _ENCODER.encode(record)


def decode_record(data: bytes) -> Record:
    """Decode and validate one record; raises ``msgspec.ValidationError`` or ``msgspec.DecodeError``."""
    return _RECORD.decode(data)


def decode_batch(data: bytes) -> list[Record]:
    """Decode and validate a JSON list of records (at most 1,000)."""
    return _BATCH.decode(data)
