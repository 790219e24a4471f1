"""Known-bad file hashes and the versioned list of their 4-byte prefixes.

Every change to the set of known-bad hashes bumps a monotonic version. A prefix enters the change log
when its first active hash is added and leaves when its last active hash is removed, so per prefix the
log alternates add, remove, add ...; a delta since version ``v`` follows from the first change after
``v`` (a removal means the prefix was present at ``v``) and the current set.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

from cloud.schema import valid_detection_name
from cloud.store import transaction

__all__ = [
    "PREFIX_BYTES",
    "REPUTATION_SCHEMA",
    "SEARCH_BATCH",
    "BadHash",
    "Delta",
    "ReputationStore",
    "normalize_sha256",
]

PREFIX_BYTES = 4
SEARCH_BATCH = 16  # prefixes per search request, exactly: the real one hides among decoys
_PREFIX_HEX = 2 * PREFIX_BYTES
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

REPUTATION_SCHEMA = """
CREATE TABLE IF NOT EXISTS bad_hashes (
    sha256 TEXT PRIMARY KEY,
    prefix TEXT NOT NULL,
    name TEXT NOT NULL,
    active INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS bad_hashes_by_prefix ON bad_hashes(prefix, active);
CREATE TABLE IF NOT EXISTS prefix_changes (
    version INTEGER NOT NULL,
    prefix TEXT NOT NULL,
    added INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS prefix_changes_by_version ON prefix_changes(version);
CREATE TABLE IF NOT EXISTS prefix_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT OR IGNORE INTO prefix_version VALUES (1, 0);
"""


@dataclass(frozen=True, slots=True)
class BadHash:
    """A known-bad file: its full SHA-256 and the detection name an agent reports for it."""

    sha256: str
    name: str


@dataclass(frozen=True, slots=True)
class Delta:
    """How the prefix list changed from ``since`` to ``version``."""

    version: int
    since: int
    added: list[str]
    removed: list[str]


def normalize_sha256(value: str) -> str:
    """The lower-case hex form of a SHA-256; raises ValueError for anything else."""
    lowered = value.strip().lower()
    if not _SHA256.fullmatch(lowered):
        raise ValueError("not a SHA-256 in hex (64 hex digits)")
    return lowered


class ReputationStore:
    """Reputation tables inside the record database (they hold nothing about any install)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def version(self) -> int:
        """The current prefix-list version (0 before any hash was added)."""
        row = self.conn.execute("SELECT version FROM prefix_version").fetchone()
        return int(row[0])

    def _bump(self) -> int:
        self.conn.execute("UPDATE prefix_version SET version = version + 1")
        return self.version()

    def _prefix_active(self, prefix: str) -> bool:
        row = self.conn.execute("SELECT 1 FROM bad_hashes WHERE prefix = ? AND active = 1", (prefix,))
        return row.fetchone() is not None

    def add(self, sha256: str, name: str) -> int:
        """Mark a hash known-bad under ``name``; returns the list version after the change."""
        digest = normalize_sha256(sha256)
        if not valid_detection_name(name):
            raise ValueError("the name must be a valid detection name (letters, digits, _ . -; <= 128)")
        prefix = digest[:_PREFIX_HEX]
        with transaction(self.conn):
            row = self.conn.execute(
                "SELECT name, active FROM bad_hashes WHERE sha256 = ?", (digest,)
            ).fetchone()
            if row is not None and row == (name, 1):
                return self.version()
            was_listed = self._prefix_active(prefix)
            self.conn.execute("INSERT OR REPLACE INTO bad_hashes VALUES (?, ?, ?, 1)", (digest, prefix, name))
            version = self._bump()
            if not was_listed:
                self.conn.execute("INSERT INTO prefix_changes VALUES (?, ?, 1)", (version, prefix))
        return version

    def remove(self, sha256: str) -> int:
        """Withdraw a known-bad hash; returns the new version. Raises LookupError if it is not listed."""
        digest = normalize_sha256(sha256)
        prefix = digest[:_PREFIX_HEX]
        with transaction(self.conn):
            cursor = self.conn.execute(
                "UPDATE bad_hashes SET active = 0 WHERE sha256 = ? AND active = 1", (digest,)
            )
            if cursor.rowcount == 0:
                raise LookupError("that hash is not listed")
            version = self._bump()
            if not self._prefix_active(prefix):
                self.conn.execute("INSERT INTO prefix_changes VALUES (?, ?, 0)", (version, prefix))
        return version

    def prefixes(self) -> tuple[int, list[str]]:
        """The current version and every listed prefix (hex, sorted), read in one snapshot."""
        with transaction(self.conn, write=False):
            version = self.version()
            rows = self.conn.execute(
                "SELECT DISTINCT prefix FROM bad_hashes WHERE active = 1 ORDER BY prefix"
            )
            return version, [prefix for (prefix,) in rows]

    def delta(self, since: int) -> Delta:
        """The prefixes added and removed after version ``since`` (which must not be ahead)."""
        with transaction(self.conn, write=False):
            version = self.version()
            first: dict[str, bool] = {}
            rows = self.conn.execute(
                "SELECT prefix, added FROM prefix_changes WHERE version > ? ORDER BY version, rowid", (since,)
            )
            for prefix, added in rows:
                first.setdefault(prefix, bool(added))
            now = {p for p in first if self._prefix_active(p)}
        was = {p for p, added in first.items() if not added}
        return Delta(version, since, sorted(now - was), sorted(was - now))

    def search(self, prefixes: list[str]) -> list[BadHash]:
        """Every listed hash under any of ``prefixes`` (hex), sorted by hash."""
        wanted = sorted(set(prefixes))
        marks = ",".join("?" * len(wanted))
        rows = self.conn.execute(
            f"SELECT sha256, name FROM bad_hashes WHERE active = 1 AND prefix IN ({marks}) ORDER BY sha256",  # noqa: S608 - placeholders only
            wanted,
        )
        return [BadHash(sha256, name) for sha256, name in rows]
