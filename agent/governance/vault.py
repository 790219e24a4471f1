"""The encrypted local store: a data key, AES-GCM sealing, and private SQLite connections.

Personal data kept on the device (paths, file names and archive member names in the scan history,
quarantine metadata and contents) is sealed with AES-256-GCM under the install's *data key*: 256
random bits in ``<state dir>/data.key``, created 0600 and never sent anywhere. It is separate from
the master secret, so deleting it shreds the local personal data without touching anything else.

A sealed value is ``version (1) || key id (4) || nonce (12) || ciphertext || tag (16)``. The nonce is
random per value; the associated data names the table and column (and usually the row), so a value
moved to another column or row no longer opens. The key id tells "sealed under a key that was
shredded" apart from tampering.

Crypto-shredding: :func:`shred_file` overwrites a key file with random bytes, syncs and unlinks it;
every value sealed under that key is then unreadable. On copy-on-write or flash storage the old
blocks may survive the overwrite until reused; the unlink is what the guarantee rests on, so keep
the state dir off backups that would keep old copies of ``data.key``.

The OS keyring (``keyring``) is not used yet: it would need an optional dependency and a headless
fallback; the 0600 file under a 0700 state dir is the store for now.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
from pathlib import Path
from typing import Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent.errors import AgentError, ConfigError
from agent.minimize import load_or_create_secret
from agent.outbox import Store, transaction

__all__ = ["KEY_FILE", "DataKey", "UnsealError", "connect", "shred_file", "transaction"]

KEY_FILE = "data.key"
_KEY_BYTES = 32
_VERSION = b"\x01"
_KEY_ID_BYTES = 4
_NONCE_BYTES = 12
_HEADER = len(_VERSION) + _KEY_ID_BYTES + _NONCE_BYTES
_TAG_BYTES = 16
_AAD_PREFIX = b"endpoint-agent/sealed/v1\0"


class UnsealError(AgentError):
    """A sealed value cannot be opened: its key was shredded, or it (or its context) was changed."""


class DataKey:
    """The install's data key; :meth:`seal` and :meth:`open` values bound to their place."""

    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY_BYTES:
            raise ConfigError("the data key must be 32 bytes")
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(b"data-key-id\0" + key).digest()[:_KEY_ID_BYTES]

    @classmethod
    def load_or_create(cls, state_dir: Path) -> Self:
        """Read ``state_dir/data.key``, creating it (0600, exclusively) when absent."""
        return cls(load_or_create_secret(state_dir / KEY_FILE, _KEY_BYTES, "data key"))

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt and authenticate ``plaintext``, bound to ``aad`` (e.g. ``b"table.column:row"``)."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        body = self._aead.encrypt(nonce, plaintext, _AAD_PREFIX + aad)
        return _VERSION + self.key_id + nonce + body

    def open(self, blob: bytes, aad: bytes) -> bytes:
        """Decrypt a value sealed by :meth:`seal` with the same ``aad``; raise :class:`UnsealError`."""
        if len(blob) < _HEADER + _TAG_BYTES or blob[:1] != _VERSION:
            raise UnsealError("not a sealed value (truncated or unknown format)")
        if blob[1 : 1 + _KEY_ID_BYTES] != self.key_id:
            raise UnsealError("sealed under another data key (it was shredded or replaced)")
        nonce = blob[1 + _KEY_ID_BYTES : _HEADER]
        try:
            return self._aead.decrypt(nonce, blob[_HEADER:], _AAD_PREFIX + aad)
        except InvalidTag as exc:
            raise UnsealError("the sealed value or its context was changed") from exc


def shred_file(path: Path) -> bool:
    """Overwrite ``path`` with random bytes, sync, and unlink it; False when it did not exist."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False
    try:
        size = os.fstat(fd).st_size
        os.pwrite(fd, secrets.token_bytes(max(size, _KEY_BYTES)), 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()
    return True


def connect(path: Path, schema: str = "") -> sqlite3.Connection:
    """A connection of its own to the store at ``path`` (created 0600), with ``schema`` applied.

    ``secure_delete`` is on, so rows deleted through this connection are zeroed in the file.
    Transactions are explicit (``BEGIN IMMEDIATE`` ... ``COMMIT``).
    """
    Store(path).close()  # creates the file 0600 and the outbox, cache and sent_log tables
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("PRAGMA secure_delete=ON")
        if schema:
            db.executescript(schema)
    except BaseException:
        db.close()
        raise
    return db
