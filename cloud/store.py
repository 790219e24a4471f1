"""SQLite stores: records in one file, install tokens in another, so neither can be joined to the other.

Both files are created 0600 and run in WAL mode with ``synchronous=FULL``: a batch the cloud
acknowledged survives a crash, because the agent deletes its copy on that acknowledgement.
``secure_delete`` is on and an erasure truncates the WAL, so erased records do not linger in free
pages or old WAL frames. Each connection belongs to the thread that opened it (the server's event
loop); SQLite calls are short, and other processes (the CLI) wait on the busy timeout.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cloud.schema import Record, encode_record

__all__ = ["AuthStore", "ErasureReceipt", "RecordStore", "open_db", "read_records", "transaction"]

_RECORDS_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL UNIQUE,
    pseudonym TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_pseudonym ON records(pseudonym);
CREATE TABLE IF NOT EXISTS erasure_receipts (
    receipt_id TEXT PRIMARY KEY,
    pseudonym_sha256 TEXT NOT NULL,
    erased INTEGER NOT NULL,
    erased_at TEXT NOT NULL
);
"""

_AUTH_SCHEMA = """
CREATE TABLE IF NOT EXISTS installs (
    token_sha256 BLOB PRIMARY KEY,
    product_key_id TEXT NOT NULL,
    enrolled_on TEXT NOT NULL
) WITHOUT ROWID;
"""


def _create_private(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    path.chmod(0o600)


def open_db(path: Path, schema: str) -> sqlite3.Connection:
    """Open (creating 0600) a WAL database and apply ``schema``; transactions are explicit."""
    _create_private(path)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA secure_delete=ON")
        conn.executescript(schema)
    except BaseException:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, *, write: bool = True) -> Iterator[sqlite3.Connection]:
    """Run the block in one transaction: all of it is stored (or read from one snapshot), or none."""
    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class ErasureReceipt:
    """Proof that every record under a pseudonym was erased."""

    receipt_id: str
    pseudonym: str
    erased: int
    erased_at: str


class RecordStore:
    """Stored verdict records, keyed by ``record_id``; the file also holds the reputation tables."""

    def __init__(self, path: Path, extra_schema: str = "") -> None:
        self.conn = open_db(path, _RECORDS_SCHEMA + extra_schema)

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def store_batch(self, records: Sequence[Record]) -> tuple[int, int]:
        """Store a batch in one transaction; returns (accepted, duplicate) counts by ``record_id``."""
        rows = [(r.record_id, r.pseudonym, encode_record(r).decode()) for r in records]
        with transaction(self.conn):
            before = self.conn.total_changes
            self.conn.executemany(
                "INSERT OR IGNORE INTO records(record_id, pseudonym, body) VALUES (?, ?, ?)", rows
            )
            accepted = self.conn.total_changes - before
        return accepted, len(rows) - accepted

    def subject(self, pseudonym: str) -> list[str]:
        """Every stored record under ``pseudonym``, as its JSON text, oldest first."""
        rows = self.conn.execute("SELECT body FROM records WHERE pseudonym = ? ORDER BY seq", (pseudonym,))
        return [body for (body,) in rows]

    def erase(self, pseudonym: str) -> ErasureReceipt:
        """Erase every record under ``pseudonym`` and keep a receipt (holding only a hash of it)."""
        receipt_id, erased_at = secrets.token_hex(16), _utc_now()
        subject_hash = hashlib.sha256(pseudonym.encode()).hexdigest()
        with transaction(self.conn):
            erased = self.conn.execute("DELETE FROM records WHERE pseudonym = ?", (pseudonym,)).rowcount
            self.conn.execute(
                "INSERT INTO erasure_receipts VALUES (?, ?, ?, ?)",
                (receipt_id, subject_hash, erased, erased_at),
            )
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return ErasureReceipt(receipt_id, pseudonym, erased, erased_at)


def read_records(path: Path) -> list[str]:
    """Every stored record as JSON text, oldest first, read without creating or changing ``path``."""
    if not path.is_file():
        raise FileNotFoundError(f"no record database at {path}")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return [body for (body,) in conn.execute("SELECT body FROM records ORDER BY seq")]
    finally:
        conn.close()


class AuthStore:
    """Install tokens, held only as SHA-256 hashes, in a database of their own."""

    def __init__(self, path: Path) -> None:
        self.conn = open_db(path, _AUTH_SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def enroll(self, product_key_id: str) -> str:
        """Issue a new 256-bit bearer token; only its hash is stored."""
        token = secrets.token_urlsafe(32)
        day = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
        with transaction(self.conn):
            self.conn.execute(
                "INSERT INTO installs VALUES (?, ?, ?)", (_token_hash(token), product_key_id, day)
            )
        return token

    def lookup(self, token: str) -> bytes | None:
        """The stored hash of ``token`` if it was issued, else None."""
        digest = _token_hash(token)
        row = self.conn.execute("SELECT 1 FROM installs WHERE token_sha256 = ?", (digest,)).fetchone()
        return digest if row else None


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
