"""Scan history: what was found, when, and where, kept on the device with the location sealed.

Table ``scan_history`` in ``agent.db``. In the clear: the time, verdict, kind, source and the
detection names (rule names, never personal). Sealed with the data key (see
:mod:`agent.governance.vault`): the path, the archive member names and the reason, as one value
bound to ``scan_history.location`` and the row's random ``uid``, so it cannot be moved to another
row. Any ``str`` round-trips, file names with undecodable bytes (surrogate escapes) included.

Only outcomes worth remembering are recorded (:func:`worth_keeping`: everything but ``clean``), and
nothing when ``[retention] history_days`` is 0. Rows expire per retention (:meth:`History.purge`).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

from agent.config import Config
from agent.governance.vault import DataKey, UnsealError, connect, transaction
from agent.model import Outcome, VerdictKind

__all__ = ["History", "HistoryEntry", "HistoryRow", "record_outcomes", "worth_keeping"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scan_history (
    id INTEGER PRIMARY KEY,
    uid BLOB NOT NULL,
    time INTEGER NOT NULL,
    verdict TEXT NOT NULL,
    kind TEXT,
    source TEXT NOT NULL,
    detections TEXT NOT NULL,
    location BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS scan_history_time ON scan_history (time);
"""
_AAD = b"scan_history.location:"


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One outcome to remember; ``path``, ``members`` and ``reason`` are stored sealed."""

    time: int
    verdict: str
    detections: tuple[str, ...]
    kind: str | None
    path: str
    members: tuple[str, ...] = ()
    source: str = "on_demand"
    reason: str = ""

    @classmethod
    def from_outcome(cls, outcome: Outcome, now: float | None = None) -> Self:
        """The row for a session's outcome, at ``now`` (default: the current time)."""
        found = outcome.verdict.detections
        return cls(
            time=int(time.time() if now is None else now),
            verdict=outcome.verdict.kind.value,
            detections=tuple(dict.fromkeys(d.name for d in found)),
            kind=outcome.classification.kind if outcome.classification else None,
            path=outcome.request.path,
            members=tuple(dict.fromkeys(d.member for d in found if d.member is not None)),
            source=outcome.request.source.value,
            reason=outcome.verdict.reason,
        )


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """A stored row as read back; ``path`` is None and ``unreadable`` says why when it cannot be opened."""

    id: int
    time: int
    verdict: str
    kind: str | None
    source: str
    detections: tuple[str, ...]
    path: str | None
    members: tuple[str, ...] = ()
    reason: str = ""
    unreadable: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The entry as a JSON-ready dict (for export)."""
        doc = asdict(self)
        doc["detections"], doc["members"] = list(self.detections), list(self.members)
        if not self.unreadable:
            del doc["unreadable"]
        return doc


def worth_keeping(outcome: Outcome) -> bool:
    """Whether an outcome goes into the history: every verdict but ``clean``."""
    return outcome.verdict.kind is not VerdictKind.CLEAN


class History:
    """The scan history in ``agent.db`` on a connection of its own (one per thread, like ``Store``)."""

    def __init__(self, path: Path, key: DataKey, *, enabled: bool = True) -> None:
        self._db = connect(path, _SCHEMA)
        self._key, self.enabled = key, enabled

    @classmethod
    def open(cls, config: Config, key: DataKey | None = None) -> Self:
        """The history of the install at ``config.state_dir``; disabled when ``history_days`` is 0."""
        from agent.governance.retention import Retention  # noqa: PLC0415 - retention imports this module

        enabled = Retention.from_config(config).history_days > 0
        key = key or DataKey.load_or_create(config.state_dir)
        return cls(config.state_dir / "agent.db", key, enabled=enabled)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def record(self, rows: Iterable[HistoryRow]) -> int:
        """Store ``rows`` in one transaction; return how many were stored."""
        if not self.enabled:
            return 0
        values = [self._values(row) for row in rows]
        if values:
            with transaction(self._db):
                self._db.executemany(
                    "INSERT INTO scan_history (uid, time, verdict, kind, source, detections, location)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    values,
                )
        return len(values)

    def entries(self, limit: int | None = None) -> list[HistoryEntry]:
        """Stored rows, oldest first (the newest ``limit`` when given), with locations opened."""
        rows = self._db.execute(
            "SELECT * FROM (SELECT id, uid, time, verdict, kind, source, detections, location"
            " FROM scan_history ORDER BY time DESC, id DESC LIMIT ?) ORDER BY time, id",
            (-1 if limit is None else limit,),
        ).fetchall()
        return [self._entry(row) for row in rows]

    def count(self) -> int:
        """How many rows are stored."""
        (count,) = self._db.execute("SELECT count(*) FROM scan_history").fetchone()
        return int(count)

    def purge(self, before: float) -> int:
        """Delete rows older than ``before`` (seconds since the epoch); return how many."""
        with transaction(self._db):
            return int(self._db.execute("DELETE FROM scan_history WHERE time < ?", (before,)).rowcount)

    def wipe(self) -> int:
        """Delete every row (for ``forget``); return how many."""
        with transaction(self._db):
            return int(self._db.execute("DELETE FROM scan_history").rowcount)

    def _values(self, row: HistoryRow) -> tuple[object, ...]:
        uid = secrets.token_bytes(16)
        location = json.dumps({"path": row.path, "members": list(row.members), "reason": row.reason})
        sealed = self._key.seal(location.encode("ascii"), _AAD + uid)
        detections = json.dumps(list(row.detections))
        return (uid, row.time, row.verdict, row.kind, row.source, detections, sealed)

    def _entry(self, row: tuple[Any, ...]) -> HistoryEntry:
        id_, uid, when, verdict, kind, source, detections, sealed = row
        names = tuple(json.loads(detections))
        try:
            location = json.loads(self._key.open(bytes(sealed), _AAD + bytes(uid)))
        except UnsealError as exc:
            return HistoryEntry(id_, when, verdict, kind, source, names, None, unreadable=str(exc))
        members = tuple(location["members"])
        return HistoryEntry(
            id_, when, verdict, kind, source, names, location["path"], members, location["reason"]
        )


def record_outcomes(
    history: History, outcomes: Iterable[Outcome], clock: Callable[[], float] = time.time
) -> int:
    """Record the outcomes :func:`worth_keeping` (the session's one call); return how many."""
    now = clock()
    return history.record(HistoryRow.from_outcome(o, now) for o in outcomes if worth_keeping(o))
