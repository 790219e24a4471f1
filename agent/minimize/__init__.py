"""Minimization: the policy of what may leave, keyed pseudonyms, and the strict wire schema."""

from agent.minimize.policy import Identity, Policy, decide, minimize, size_bucket, time_bucket
from agent.minimize.pseudonym import MasterSecret, load_or_create_secret, period_label
from agent.minimize.wire import WIRE_FIELDS, Record, WireDetection, decode_batch, decode_record, encode_record

__all__ = [
    "WIRE_FIELDS",
    "Identity",
    "MasterSecret",
    "Policy",
    "Record",
    "WireDetection",
    "decide",
    "decode_batch",
    "decode_record",
    "encode_record",
    "load_or_create_secret",
    "minimize",
    "period_label",
    "size_bucket",
    "time_bucket",
]
