"""The wire schema as the cloud sees it: the one place the cloud imports from the agent.

Everything the cloud accepts from an agent is decoded here, strictly, with the agent's own definition
(:mod:`agent.minimize.wire`; anonymized analytics reports and their mechanism:
:mod:`agent.minimize.analytics`). Formats the cloud checks elsewhere (pseudonyms in URLs, detection names it
hands out) take their patterns from that schema, so the two ends cannot drift apart.
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec
import msgspec.inspect

from agent.minimize.analytics import (
    ANALYTICS_SCHEMA,
    COUNTERS,
    MAX_REPORTS,
    AnalyticsReport,
    decode_reports,
    unbiased,
)
from agent.minimize.wire import SCHEMA_VERSION, Record, WireDetection, decode_batch, encode_record

__all__ = [
    "ANALYTICS_SCHEMA",
    "COUNTERS",
    "MAX_BATCH",
    "MAX_REPORTS",
    "SCHEMA_VERSION",
    "AnalyticsReport",
    "Record",
    "decode_records",
    "decode_reports",
    "encode_record",
    "unbiased",
    "valid_detection_name",
    "valid_pseudonym",
]

MAX_BATCH = 1000  # records per batch; the same limit as agent.minimize.wire.decode_batch (a test checks)

_MSGPACK_BATCH = msgspec.msgpack.Decoder(Annotated[list[Record], msgspec.Meta(max_length=MAX_BATCH)])


def _field_pattern(struct: type[msgspec.Struct], field: str) -> re.Pattern[str]:
    info = msgspec.inspect.type_info(struct)
    fields = info.fields if isinstance(info, msgspec.inspect.StructType) else ()
    for entry in fields:
        kind = entry.type
        if entry.name == field and isinstance(kind, msgspec.inspect.StrType) and kind.pattern:
            return re.compile(kind.pattern)
    raise LookupError(f"the wire schema has no pattern for {struct.__name__}.{field}")


_PSEUDONYM = _field_pattern(Record, "pseudonym")
_DETECTION_NAME = _field_pattern(WireDetection, "name")


def valid_pseudonym(value: str) -> bool:
    """Whether ``value`` is a pseudonym as the wire schema allows it."""
    return _PSEUDONYM.fullmatch(value) is not None


def valid_detection_name(value: str) -> bool:
    """Whether ``value`` may be a detection name in a wire record."""
    return _DETECTION_NAME.fullmatch(value) is not None


def decode_records(data: bytes, media: str) -> list[Record]:
    """Decode a batch of records from ``json`` or ``msgpack``; raises ``msgspec.DecodeError`` subclasses."""
    if media == "json":
        return decode_batch(data)
    return _MSGPACK_BATCH.decode(data)
