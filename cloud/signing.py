"""The signed prefix-list document: Ed25519 over exact payload bytes, carried as base64.

``GET /v1/reputation/prefixes[?since=V]`` answers ``200`` with ``Content-Type: application/json``::

    {"payload": "<base64>", "signature": "<base64>", "key_id": "<16 hex>"}

- ``payload``: standard base64 (with padding) of the payload bytes, UTF-8 JSON.
- ``signature``: standard base64 of the 64-byte Ed25519 signature over exactly those payload bytes.
- ``key_id``: the first 16 hex digits of SHA-256 over the raw 32-byte public key (to pick a key
  during rotation; it is not a trust anchor).

The payload is one JSON object (the cloud writes it with sorted keys and no spaces, but a verifier
must never re-serialize: it verifies the decoded bytes, then parses them)::

    {"format": "endpoint-cloud/prefix-list/v1", "issued_at": "2026-01-02T03:04:05Z",
     "kind": "full", "since": null, "version": 7, "prefix_bytes": 4,
     "prefixes": ["00a1b2c3", ...]}                        # kind "full": the whole list
    {"format": "endpoint-cloud/prefix-list/v1", "issued_at": "...",
     "kind": "delta", "since": 5, "version": 7, "prefix_bytes": 4,
     "added": ["..."], "removed": ["..."]}                 # kind "delta": changes after ``since``

Prefixes are the first ``prefix_bytes`` (4) bytes of SHA-256 in lower-case hex, sorted, unique.
``version`` only grows. Without ``since`` (or with ``since`` ahead of the cloud's version, which an
agent must treat as a rollback and refuse) the answer is ``full``; with ``since`` <= version it is a
``delta`` (empty lists when nothing changed). To verify, an agent:

1. base64-decodes ``payload`` and ``signature`` (strictly),
2. verifies the signature over the payload bytes with the pinned raw public key
   (``Ed25519PublicKey.from_public_bytes(pinned).verify(signature, payload)``),
3. parses the payload, checks ``format``, and refuses a ``version`` lower than the one it holds
   (and a delta whose ``since`` is not the version it holds).

The public key is printed, base64 of its raw 32 bytes, by ``endpoint-cloud signing-key FILE``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cloud.errors import SetupError

__all__ = [
    "PREFIX_FORMAT",
    "key_id",
    "load_or_create_key",
    "public_key_b64",
    "sign_payload",
    "verify_envelope",
]

PREFIX_FORMAT = "endpoint-cloud/prefix-list/v1"


def load_or_create_key(path: Path, *, create: bool = True) -> Ed25519PrivateKey:
    """Load the Ed25519 signing key from ``path`` (PKCS#8 PEM), creating it 0600 if missing."""
    if create and not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        return key
    try:
        if path.stat().st_mode & 0o077:
            raise SetupError(f"signing key {path} is readable by others; chmod 600 it")
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SetupError(f"cannot load signing key {path}: {exc}") from exc
    if not isinstance(loaded, Ed25519PrivateKey):
        raise SetupError(f"signing key {path} is not an Ed25519 key")
    return loaded


def _raw_public(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_b64(key: Ed25519PrivateKey) -> str:
    """The public key as base64 of its raw 32 bytes, the form an agent pins."""
    return base64.b64encode(_raw_public(key)).decode()


def key_id(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """First 16 hex digits of SHA-256 over the raw public key."""
    return hashlib.sha256(_raw_public(key)).hexdigest()[:16]


def sign_payload(key: Ed25519PrivateKey, body: dict[str, Any]) -> bytes:
    """The signed envelope (JSON bytes) for a payload object; adds ``format`` and ``issued_at``."""
    issued = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    document = {**body, "format": PREFIX_FORMAT, "issued_at": issued}
    payload = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    envelope = {
        "key_id": key_id(key),
        "payload": base64.b64encode(payload).decode(),
        "signature": base64.b64encode(key.sign(payload)).decode(),
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def verify_envelope(envelope: bytes, public_key_b64: str) -> dict[str, Any]:
    """Verify an envelope against a base64 raw public key; returns the payload object or raises ValueError."""
    try:
        outer = json.loads(envelope)
        payload = base64.b64decode(outer["payload"], validate=True)
        signature = base64.b64decode(outer["signature"], validate=True)
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
        public.verify(signature, payload)
        document = json.loads(payload)
    except (
        InvalidSignature,
        KeyError,
        TypeError,
        ValueError,
    ) as exc:  # binascii and JSON errors are ValueErrors
        raise ValueError(f"prefix list does not verify: {type(exc).__name__}") from exc
    if not isinstance(document, dict) or document.get("format") != PREFIX_FORMAT:
        raise ValueError("prefix list has an unknown format")
    return document
