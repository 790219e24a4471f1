"""Ed25519 keys for rule bundles: the vendor's signing key, the agent's pinned public keys.

A signing key is a PKCS#8 PEM file, 0600. A pinned key is the standard base64 of the raw 32-byte
public key (what ``endpoint-agent rules keygen`` prints). A key's id is the first 16 hex digits of
SHA-256 over its raw public bytes; it only picks which pinned key to try and is no trust anchor.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.errors import ConfigError

__all__ = ["generate_key", "key_id", "load_signing_key", "pinned_keys", "public_key_b64"]


def _raw(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """First 16 hex digits of SHA-256 over the raw public key."""
    return hashlib.sha256(_raw(key)).hexdigest()[:16]


def public_key_b64(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The public key as base64 of its raw 32 bytes: the form an agent pins."""
    return base64.b64encode(_raw(key)).decode()


def generate_key(path: Path) -> Ed25519PrivateKey:
    """Create a new signing key at ``path`` (0600, never overwriting a file) and return it."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError as exc:
        raise ConfigError(f"{path} exists; a signing key is never overwritten") from exc
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return key


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """Load a signing key; refuse one that others may read or that is not Ed25519."""
    try:
        if path.stat().st_mode & 0o077:
            raise ConfigError(f"signing key {path} is readable by others; chmod 600 it")
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot load signing key {path}: {exc}") from exc
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ConfigError(f"signing key {path} is not an Ed25519 key")
    return loaded


def pinned_keys(encoded: Iterable[str]) -> Mapping[str, Ed25519PublicKey]:
    """Parse pinned base64 raw public keys into a map from key id to key; a bad entry is a ConfigError."""
    keys: dict[str, Ed25519PublicKey] = {}
    for index, text in enumerate(encoded):
        try:
            raw = base64.b64decode(text.strip(), validate=True)
            key = Ed25519PublicKey.from_public_bytes(raw)
        except (binascii.Error, ValueError) as exc:
            raise ConfigError(f"pinned rules key #{index + 1} is not a base64 raw Ed25519 key") from exc
        keys[key_id(key)] = key
    return keys
