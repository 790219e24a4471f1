"""Talking to the security cloud: the HTTPS client, retries, delivery of the outbox, reputation."""

from agent.upstream.client import ClientSettings, UpstreamClient, spki_pin, tls_context
from agent.upstream.enroll import client_from_config, enroll, read_token, reputation_from_config, token_path
from agent.upstream.reputation import PrefixList, Reputation, verify_prefix_envelope
from agent.upstream.retry import Backoff

__all__ = [
    "Backoff",
    "ClientSettings",
    "PrefixList",
    "Reputation",
    "UpstreamClient",
    "client_from_config",
    "enroll",
    "read_token",
    "reputation_from_config",
    "spki_pin",
    "tls_context",
    "token_path",
    "verify_prefix_envelope",
]
