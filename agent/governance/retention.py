"""Retention (storage limitation, GDPR Art. 5(1)(e)): every local store has a time to live.

=============  =====================  ========================================================
store          default                what expires
=============  =====================  ========================================================
history        90 days                ``scan_history`` rows (sealed paths with them)
cache          30 days                ``verdict_cache`` rows, by the time they were written
outbox         30 days                queued and set-aside (``outbox_poison``) records
sent_log       365 days               the transparency log and the local erasure receipts
quarantine     30 days                quarantined files and their sealed metadata
logs           14 days                files under ``<state dir>/logs/`` (support bundles,
                                      rotated logs); the agent itself logs to standard error
=============  =====================  ========================================================

The values come from ``[retention]`` in ``agent.toml`` (``history_days`` ... ``logs_days``, and
``purge_interval`` in seconds for the service's schedule). A value of 0 keeps nothing past the next
purge, and ``history_days = 0`` records no history at all.

:func:`purge` deletes every expired row and file now and returns the counts per store; the service
runs it every ``purge_interval`` seconds and ``endpoint-agent purge`` runs it at once. Rows are
deleted with ``secure_delete`` on and the WAL is truncated afterwards, so expired content does not
linger in free pages or old WAL frames.

**The pseudonyms this install used** (for export and ``forget``) are the one store whose retention
follows the cloud's. A pseudonym can only reach the cloud inside a record, every record that left
is in the transparency log, and every record not yet sent is in the outbox. Before each purge cuts
the log, :func:`harvest_pseudonyms` reads the pseudonyms out of its new rows (incrementally) and out
of the outbox into ``pseudonyms_used`` (pseudonym, first and last seen, whether it left the device);
a noted pseudonym is kept as long as the cloud may keep records under it (the longest purpose
retention) or the log, whichever is longer. :func:`pseudonyms_used` adds the pseudonym of the
period in force now. This is exact, needs no guess about past rotation settings, and also covers a
long-running session that kept one period's pseudonym past the period's end.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import stat
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Self

import structlog

from agent.config import Config, RetentionConfig
from agent.governance.history import History
from agent.governance.purposes import load_purposes
from agent.governance.quarantine import Quarantine
from agent.governance.vault import DataKey, connect, transaction
from agent.minimize.pseudonym import MasterSecret, period_label

__all__ = [
    "DAY",
    "LOG_DIR",
    "STORES",
    "PurgeReport",
    "Retention",
    "forget_pseudonyms",
    "harvest_pseudonyms",
    "pseudonyms_used",
    "purge",
]

log = structlog.get_logger("endpoint-agent")
DAY = 86_400
LOG_DIR = "logs"
STORES = ("history", "cache", "outbox", "sent_log", "quarantine", "logs")
_DOMAIN = "verdicts"
_PSEUDONYM_SCHEMA = """
CREATE TABLE IF NOT EXISTS pseudonyms_used (
    pseudonym TEXT PRIMARY KEY, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, sent INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pseudonym_harvest (source TEXT PRIMARY KEY, mark INTEGER NOT NULL) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class Retention(RetentionConfig):
    """Time to live per local store, in days; ``purge_interval`` in seconds (``[retention]``).

    The fields and their defaults are the config section's own (one table, no second copy).
    """

    @classmethod
    def from_config(cls, config: Config) -> Self:
        """The ``[retention]`` section of ``config``; the defaults while config has no such section."""
        section = getattr(config, "retention", None)
        if section is None:
            return cls()
        return cls(**{f.name: getattr(section, f.name) for f in fields(cls) if hasattr(section, f.name)})

    def cutoff(self, store: str, now: float) -> float:
        """The time before which rows of ``store`` have expired at ``now``."""
        days: int = getattr(self, f"{store}_days")
        return now - days * DAY


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """What one purge deleted, per store (``STORES`` plus ``pseudonyms``)."""

    time: int
    deleted: Mapping[str, int]

    @property
    def total(self) -> int:
        """Rows and files deleted in all stores."""
        return sum(self.deleted.values())

    def render(self) -> str:
        """One line per store, for ``endpoint-agent purge``."""
        lines = [f"{store:<11} {count:>7} expired entries deleted" for store, count in self.deleted.items()]
        return "\n".join(lines)


def purge(config: Config, now: float | None = None) -> PurgeReport:
    """Delete every expired row and file of every local store at ``now``; return the counts."""
    when = time.time() if now is None else now
    ttl = Retention.from_config(config)
    state = config.state_dir
    deleted = dict.fromkeys(STORES, 0)
    deleted.update(_purge_rows(config, ttl, when))
    key = DataKey.load_or_create(state)
    with History(state / "agent.db", key) as history:
        deleted["history"] = history.purge(ttl.cutoff("history", when))
    with Quarantine(state, key) as quarantine:
        deleted["quarantine"] = quarantine.purge(ttl.cutoff("quarantine", when))
    deleted["logs"] = _purge_files(state / LOG_DIR, ttl.cutoff("logs", when))
    _checkpoint(state / "agent.db")
    log.info("stores_purged", **{f"{k}_deleted": v for k, v in deleted.items()})
    return PurgeReport(int(when), deleted)


def _purge_rows(config: Config, ttl: Retention, when: float) -> dict[str, int]:
    """The cache, outbox, transparency log and receipts; and the pseudonyms past any retention."""
    longest = max(p.retention_days for p in load_purposes(config).purposes.values())
    keep_pseudonyms = when - max(ttl.sent_log_days, longest) * DAY
    db = connect(config.state_dir / "agent.db", _PSEUDONYM_SCHEMA)
    try:
        harvest_pseudonyms(db)  # before the transparency log that shows them is cut
        with transaction(db):
            cache = db.execute("DELETE FROM verdict_cache WHERE created < ?", (ttl.cutoff("cache", when),))
            queued = db.execute("DELETE FROM outbox WHERE created < ?", (ttl.cutoff("outbox", when),))
            poison = db.execute("DELETE FROM outbox_poison WHERE created < ?", (ttl.cutoff("outbox", when),))
            sent = db.execute("DELETE FROM sent_log WHERE time < ?", (ttl.cutoff("sent_log", when),))
            receipts = _purge_receipts(db, ttl.cutoff("sent_log", when))
            used = db.execute("DELETE FROM pseudonyms_used WHERE last_seen < ?", (keep_pseudonyms,))
            # an emptied log numbers its next rows from 1 again: read it from the start next time
            db.execute("DELETE FROM pseudonym_harvest WHERE NOT EXISTS (SELECT 1 FROM sent_log)")
    finally:
        db.close()
    return {
        "cache": cache.rowcount,
        "outbox": queued.rowcount + poison.rowcount,
        "sent_log": sent.rowcount + receipts,
        "pseudonyms": used.rowcount,
    }


def _purge_files(root: Path, before: float) -> int:
    """Delete regular files under ``root`` (symlinks not followed) last modified before ``before``."""
    removed = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath, name)
            try:
                st = path.lstat()
                if stat.S_ISREG(st.st_mode) and st.st_mtime < before:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
    return removed


def _checkpoint(path: Path) -> None:
    """Fold the WAL into the file and truncate it, so deleted rows leave no old frames behind."""
    db = connect(path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        db.close()


# ---------------------------------------------------------------------- the pseudonyms used


def harvest_pseudonyms(db: sqlite3.Connection) -> int:
    """Note the pseudonyms in the transparency log (new rows) and the outbox; return how many rows read."""
    db.executescript(_PSEUDONYM_SCHEMA)
    with transaction(db):
        row = db.execute("SELECT mark FROM pseudonym_harvest WHERE source = 'sent_log'").fetchone()
        mark = row[0] if row else 0
        sent = db.execute(
            "SELECT id, time, payload FROM sent_log WHERE id > ? ORDER BY id", (mark,)
        ).fetchall()
        for _id, when, payload in sent:
            _note(db, _pseudonyms_in(bytes(payload)), int(when), sent=True)
        if sent:
            db.execute(
                "INSERT OR REPLACE INTO pseudonym_harvest (source, mark) VALUES ('sent_log', ?)",
                (sent[-1][0],),
            )
        queued = db.execute(
            "SELECT created, body FROM outbox UNION ALL SELECT created, body FROM outbox_poison"
        ).fetchall()
        for when, body in queued:
            _note(db, _pseudonyms_in(b"[" + bytes(body) + b"]"), int(when), sent=False)
    return len(sent) + len(queued)


def pseudonyms_used(config: Config, now: float | None = None) -> list[dict[str, Any]]:
    """Every pseudonym this install used (harvested, plus the one in force now), oldest first."""
    when = int(time.time() if now is None else now)
    current = MasterSecret.load_or_create(config.state_dir).pseudonym(
        _DOMAIN, period_label(dt.datetime.fromtimestamp(when, dt.UTC), config.privacy.pseudonym_period)
    )
    db = connect(config.state_dir / "agent.db", _PSEUDONYM_SCHEMA)
    try:
        harvest_pseudonyms(db)
        rows = db.execute(
            "SELECT pseudonym, first_seen, last_seen, sent FROM pseudonyms_used"
            " ORDER BY first_seen, pseudonym"
        ).fetchall()
    finally:
        db.close()
    used = [{"pseudonym": p, "first_seen": f, "last_seen": last, "sent": bool(s)} for p, f, last, s in rows]
    if current not in {u["pseudonym"] for u in used}:
        used.append({"pseudonym": current, "first_seen": when, "last_seen": when, "sent": False})
    return used


def forget_pseudonyms(db: sqlite3.Connection) -> int:
    """Delete every noted pseudonym (for ``forget``, inside the caller's transaction); return how many."""
    db.execute("DELETE FROM pseudonym_harvest")
    return int(db.execute("DELETE FROM pseudonyms_used").rowcount)


def _purge_receipts(db: sqlite3.Connection, before: float) -> int:
    """Delete local erasure receipts received before ``before`` (inside the caller's transaction)."""
    exists = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'erasure_receipts'").fetchone()
    if not exists:
        return 0
    return int(db.execute("DELETE FROM erasure_receipts WHERE received < ?", (before,)).rowcount)


def _note(db: sqlite3.Connection, pseudonyms: Iterable[str], when: int, *, sent: bool) -> None:
    db.executemany(
        "INSERT INTO pseudonyms_used (pseudonym, first_seen, last_seen, sent) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(pseudonym) DO UPDATE SET first_seen = min(first_seen, excluded.first_seen),"
        " last_seen = max(last_seen, excluded.last_seen), sent = max(sent, excluded.sent)",
        [(p, when, when, int(sent)) for p in set(pseudonyms)],
    )


def _pseudonyms_in(payload: bytes) -> Iterator[str]:
    """The ``pseudonym`` fields of the records in a JSON payload (a list of records, or one)."""
    try:
        doc = json.loads(payload)
    except ValueError:
        return
    for item in doc if isinstance(doc, list) else [doc]:
        if isinstance(item, dict) and isinstance(item.get("pseudonym"), str):
            yield item["pseudonym"]
