"""The local store: one SQLite file (WAL) holding the verdict cache and the outbox.

A verdict and the upstream record it produced are written in one transaction, so a crash can never
leave a record without its verdict or the reverse. The store holds no paths or file names: the
cache is keyed by a digest of (device, inode, size, mtime_ns, ctime_ns) and the rules version, and
outbox rows are wire records, which by construction carry nothing personal.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from agent.minimize.wire import Record, decode_record, encode_record
from agent.model import StatKey

__all__ = ["Store"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS verdict_cache (
    key BLOB PRIMARY KEY,
    ruleset TEXT NOT NULL,
    created INTEGER NOT NULL,
    value BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    record_id TEXT PRIMARY KEY,
    purpose TEXT NOT NULL,
    created INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_age ON outbox (created, record_id);
CREATE TABLE IF NOT EXISTS outbox_poison (
    record_id TEXT PRIMARY KEY,
    purpose TEXT NOT NULL,
    created INTEGER NOT NULL,
    body BLOB NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sent_log (
    id INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    purpose TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""
_LOOKUP_CHUNK = 500


class Store:
    """The agent's SQLite store under the state dir (created 0600)."""

    def __init__(self, path: Path, ruleset: str | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._ruleset = ruleset or ""
        if ruleset is not None:  # the scanning side owns the cache; a delivery-only handle leaves it
            self._db.execute("DELETE FROM verdict_cache WHERE ruleset != ?", (ruleset,))

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def cache_key(self, stat: StatKey) -> bytes:
        """The cache key of a file version under the current rules."""
        text = f"{stat.device}:{stat.inode}:{stat.size}:{stat.mtime_ns}:{stat.ctime_ns}:{self._ruleset}"
        return hashlib.blake2b(text.encode(), digest_size=16).digest()

    def lookup(self, stats: Sequence[StatKey]) -> dict[StatKey, bytes]:
        """Return the cached verdicts (opaque bytes) of those file versions that have one."""
        keys = {self.cache_key(s): s for s in stats}
        found: dict[StatKey, bytes] = {}
        key_list = list(keys)
        for start in range(0, len(key_list), _LOOKUP_CHUNK):
            chunk = key_list[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT key, value FROM verdict_cache WHERE key IN ({marks})", chunk)  # noqa: S608 - only '?' marks are interpolated
            for key, value in rows:
                found[keys[key]] = value
        return found

    def persist(self, verdicts: Iterable[tuple[StatKey, bytes]], records: Iterable[Record]) -> None:
        """Write verdicts to the cache and records to the outbox, in one transaction."""
        now = int(time.time())
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO verdict_cache (key, ruleset, created, value) VALUES (?, ?, ?, ?)",
                [(self.cache_key(s), self._ruleset, now, v) for s, v in verdicts],
            )
            self._db.executemany(
                "INSERT OR IGNORE INTO outbox (record_id, purpose, created, body) VALUES (?, ?, ?, ?)",
                [(r.record_id, r.purpose, now, encode_record(r)) for r in records],
            )

    def outbox(self, limit: int = 1000) -> list[Record]:
        """Return the oldest queued records."""
        rows = self._db.execute("SELECT body FROM outbox ORDER BY created, record_id LIMIT ?", (limit,))
        return [decode_record(body) for (body,) in rows]

    def outbox_depth(self) -> int:
        """How many records wait in the outbox."""
        (count,) = self._db.execute("SELECT count(*) FROM outbox").fetchone()
        return int(count)

    def outbox_batch(self, max_records: int, max_bytes: int) -> list[tuple[str, bytes]]:
        """The oldest queued records, as (record_id, JSON body), within both bounds (at least one)."""
        rows = self._db.execute(
            "SELECT record_id, body FROM outbox ORDER BY created, record_id LIMIT ?", (max_records,)
        )
        batch: list[tuple[str, bytes]] = []
        size = 2
        for record_id, body in rows:
            size += len(body) + 1
            if batch and size > max_bytes:
                break
            batch.append((record_id, bytes(body)))
        return batch

    def acknowledge(self, record_ids: Sequence[str], recipient: str, purpose: str, payload: bytes) -> None:
        """Drop delivered records and log the exact payload sent, in one transaction."""
        with self._transaction():
            self._db.executemany("DELETE FROM outbox WHERE record_id = ?", [(r,) for r in record_ids])
            self._log_sent(recipient, purpose, "verdicts", payload)

    def log_sent(self, recipient: str, purpose: str, kind: str, payload: bytes) -> None:
        """Record a payload that left the device (a lookup, an erasure request)."""
        with self._transaction():
            self._log_sent(recipient, purpose, kind, payload)

    def _log_sent(self, recipient: str, purpose: str, kind: str, payload: bytes) -> None:
        self._db.execute(
            "INSERT INTO sent_log (time, recipient, purpose, kind, payload) VALUES (?, ?, ?, ?, ?)",
            (int(time.time()), recipient, purpose, kind, payload),
        )

    def sent(self, limit: int = 1000) -> list[tuple[int, str, str, str, bytes]]:
        """The newest transparency-log entries: (time, recipient, purpose, kind, payload)."""
        rows = self._db.execute(
            "SELECT time, recipient, purpose, kind, payload FROM sent_log ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [(t, r, p, k, bytes(b)) for t, r, p, k, b in rows]

    def poison(self, record_id: str, reason: str) -> None:
        """Move a record the cloud refused out of the queue, keeping it with the reason."""
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO outbox_poison (record_id, purpose, created, body, reason)"
                " SELECT record_id, purpose, created, body, ? FROM outbox WHERE record_id = ?",
                (reason[:500], record_id),
            )
            self._db.execute("DELETE FROM outbox WHERE record_id = ?", (record_id,))
            self._bump("outbox_poisoned", 1)

    def enforce_bounds(self, max_records: int, max_age: float, now: float | None = None) -> int:
        """Drop the oldest records beyond ``max_records`` or older than ``max_age``; count the drop."""
        cutoff = int((time.time() if now is None else now) - max_age)
        with self._transaction():
            old = self._db.execute("DELETE FROM outbox WHERE created < ?", (cutoff,)).rowcount
            over = self._db.execute(
                "DELETE FROM outbox WHERE record_id IN (SELECT record_id FROM outbox"
                " ORDER BY created DESC, record_id DESC LIMIT -1 OFFSET ?)",
                (max_records,),
            ).rowcount
            if old + over:
                self._bump("outbox_dropped", old + over)
        return int(old + over)

    def counter(self, name: str) -> int:
        """A persistent counter (``outbox_dropped``, ``outbox_poisoned``)."""
        row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def _bump(self, name: str, by: int) -> None:
        self._db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?)"
            " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, by),
        )

    @staticmethod
    def counts(path: Path) -> dict[str, int]:
        """Rows in the cache and the outbox, read through a separate read-only connection."""
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
        try:
            (cache,) = db.execute("SELECT count(*) FROM verdict_cache").fetchone()
            (outbox,) = db.execute("SELECT count(*) FROM outbox").fetchone()
            counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
        finally:
            db.close()
        return {
            "cache_entries": int(cache),
            "outbox_depth": int(outbox),
            "outbox_dropped": int(counters.get("outbox_dropped", 0)),
            "outbox_poisoned": int(counters.get("outbox_poisoned", 0)),
        }

    def _transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return transaction(self._db)


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block in one write transaction on ``db``: all of it is stored, or none."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
