"""Talking to the security cloud: the HTTPS client, retries, delivery of the outbox, reputation."""

from agent.upstream.client import ClientSettings, UpstreamClient, spki_pin, tls_context
from agent.upstream.enroll import client_from_config, enroll, read_token, token_path
from agent.upstream.retry import Backoff

__all__ = [
    "Backoff",
    "ClientSettings",
    "UpstreamClient",
    "client_from_config",
    "enroll",
    "read_token",
    "spki_pin",
    "tls_context",
    "token_path",
]
