"""Anonymized product analytics on the device: daily counters, the ε budget, reports, sending.

**Counting** is local and always on: :meth:`Analytics.count` (one scan outcome) and
:meth:`Analytics.count_run` (one scan run) add to per-day counters in ``agent.db``
(``analytics_counters``), kept :data:`WINDOW_DAYS` days (purged on open and before each send).
Answers from the verdict cache are not counted: the counters describe work done. Counts are
buffered in memory and written every :data:`_FLUSH_EVERY` increments, on :meth:`Analytics.flush`
and on :meth:`Analytics.close`.

**Reporting** needs consent to ``product_analytics``. For each UTC day closed for two hours that
began after consent was given, lies in the window and was never reported, one report is perturbed
(:func:`agent.minimize.analytics.perturb`, ε per report) in the same transaction that charges ε to
that day's persisted budget (``analytics_budget``, in millionths of ε) and stores the report
(``analytics_pending``). A report that would exceed the day's budget is not made
(:class:`BudgetExhausted`). A stored report is resent unchanged until the cloud takes it, so a
retry never spends ε again; a report the cloud refuses is dropped.

**Sending** (:class:`AnalyticsSender`) happens inside :meth:`EgressGate.sending`, to ``POST
/v1/analytics`` of the configured cloud, over a client of its own **without the install token**
(no ``Authorization`` header, no connection shared with the authenticated channel). Reports carry
no pseudonym and a fresh random ``report_id`` each. Every payload that leaves is written to the
transparency log (kind ``analytics_report``, purpose ``product_analytics``). While the purpose is
not allowed, stored reports are deleted; a withdrawal deletes them in its own transaction (an
SQLite trigger on the consent ledger), so none is sent after ``consent withdraw`` returns.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import structlog

from agent.errors import AgentError, UpstreamRejected, UpstreamUnavailable
from agent.governance.gate import EgressGate
from agent.minimize.analytics import (
    CAPS,
    EPSILON,
    MAX_REPORTS,
    AnalyticsReport,
    decode_reports,
    encode_reports,
    outcome_counters,
    perturb,
)
from agent.model import Outcome
from agent.outbox import Store, transaction

if TYPE_CHECKING:
    from agent.config import Config
    from agent.upstream import UpstreamClient

__all__ = [
    "KIND",
    "PURPOSE",
    "WINDOW_DAYS",
    "Analytics",
    "AnalyticsSender",
    "BudgetExhausted",
    "DaySummary",
    "SendResult",
    "sender_from_config",
]

log = structlog.get_logger("endpoint-agent")
PURPOSE = "product_analytics"
KIND = "analytics_report"
WINDOW_DAYS = 7  # days of counters kept and reportable
_MICRO = 1_000_000
_FLUSH_EVERY = 1_000
_DAY = 86_400
_SETTLE = 2 * 3_600  # a day is reported once it has been over this long: late counts reach it first
ANALYTICS_PATH = "/v1/analytics"
Post = Callable[[bytes], Mapping[str, Any]]
LogSent = Callable[[str, str, str, bytes], None]
_TABLES = ("analytics_counters", "analytics_budget", "analytics_pending")  # what _SCHEMA creates
_SCHEMA = """
CREATE TABLE IF NOT EXISTS analytics_counters (
    day TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL, PRIMARY KEY (day, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS analytics_budget (
    day TEXT PRIMARY KEY, spent INTEGER NOT NULL, reports INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS analytics_pending (
    report_id TEXT PRIMARY KEY, day TEXT NOT NULL, body BLOB NOT NULL
) WITHOUT ROWID;
"""
# Withdrawing consent deletes stored reports in the ledger's own transaction.
_TRIGGER = """
CREATE TRIGGER IF NOT EXISTS analytics_purge_on_withdraw AFTER INSERT ON consent_ledger
WHEN NEW.purpose = 'product_analytics' AND NEW.action = 'withdraw'
BEGIN DELETE FROM analytics_pending; END;
"""


class BudgetExhausted(AgentError):
    """Another report of this day would spend more ε than the day's budget."""


@dataclass(frozen=True, slots=True)
class DaySummary:
    """One day as kept locally: its non-zero counters, ε spent, reports made."""

    day: str
    counters: Mapping[str, int]
    epsilon_spent: float
    reports: int


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one :meth:`AnalyticsSender.send_due` did: reports sent, the outcome and why."""

    sent: int
    outcome: Literal["sent", "nothing_due", "not_allowed", "deferred", "refused"]
    reason: str


def _utc_day(when: float) -> str:
    return _day_label(int(when // _DAY))


@functools.lru_cache(maxsize=8)
def _day_label(index: int) -> str:
    """The ``YYYY-MM-DD`` of UTC day ``index`` since the epoch (every one of them is 86,400 s long)."""
    return dt.datetime.fromtimestamp(index * _DAY, dt.UTC).strftime("%Y-%m-%d")


class Analytics:
    """The local counters, budget and stored reports in ``agent.db`` (own connection, thread-safe)."""

    def __init__(
        self,
        path: Path,
        clock: Callable[[], float] = time.time,
        daily_budget: float = EPSILON,
        rng: random.Random | None = None,
    ) -> None:
        Store(path).close()  # the store creates the file 0600
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._clock, self._rng = clock, rng
        self._budget = round(daily_budget * _MICRO)
        self._cost = round(EPSILON * _MICRO)
        self._lock = threading.RLock()
        self._buffer: Counter[tuple[str, str]] = Counter()
        self._buffered = 0  # increments in the buffer
        self.ensure_trigger()
        self.purge_expired()

    @classmethod
    def open(cls, state_dir: Path, **kwargs: Any) -> Self:  # noqa: ANN401 - passed on to __init__
        """The analytics of the install at ``state_dir``."""
        return cls(state_dir / "agent.db", **kwargs)

    def close(self) -> None:
        """Write buffered counts and close the connection."""
        with self._lock:
            self.flush()
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ counting
    def count(self, outcome: Outcome) -> None:
        """Count one scan outcome (kind, detection families, error kind) under today."""
        self._add(outcome_counters(outcome))

    def count_batch(self, outcomes: Iterable[Outcome]) -> None:
        """Count several outcomes at once."""
        self._add([name for outcome in outcomes for name in outcome_counters(outcome)])

    def count_run(self) -> None:
        """Count one scan run (an ``endpoint-agent scan``, a sweep)."""
        self._add(["scans_run"])

    def flush(self) -> None:
        """Write the buffered counts in one transaction."""
        with self._lock:
            if not self._buffer:
                return
            rows = [(day, name, n) for (day, name), n in self._buffer.items()]
            with transaction(self._db):
                self._db.executemany(
                    "INSERT INTO analytics_counters (day, name, value) VALUES (?, ?, ?)"
                    " ON CONFLICT(day, name) DO UPDATE SET value = value + excluded.value",
                    rows,
                )
            self._buffer.clear()
            self._buffered = 0

    def _add(self, names: list[str]) -> None:
        if not names:
            return
        day = _utc_day(self._clock())
        with self._lock:
            counted = [(day, name) for name in names if name in CAPS]
            self._buffer.update(counted)
            self._buffered += len(counted)
            if self._buffered >= _FLUSH_EVERY:
                self.flush()

    # ------------------------------------------------------------------ reading
    def counters(self, day: str) -> dict[str, int]:
        """The counters of ``day`` (written ones; call :meth:`flush` first for the latest)."""
        with self._lock:
            rows = self._db.execute("SELECT name, value FROM analytics_counters WHERE day = ?", (day,))
            return {name: int(value) for name, value in rows}

    def days(self) -> list[DaySummary]:
        """Every day held locally, oldest first."""
        self.flush()
        with self._lock:
            counted = {d for (d,) in self._db.execute("SELECT DISTINCT day FROM analytics_counters")}
            spent = {
                d: (s, r) for d, s, r in self._db.execute("SELECT day, spent, reports FROM analytics_budget")
            }
        return [
            DaySummary(day, self.counters(day), spent.get(day, (0, 0))[0] / _MICRO, spent.get(day, (0, 0))[1])
            for day in sorted(counted | set(spent))
        ]

    def epsilon_spent(self, day: str) -> float:
        """ε spent on ``day``'s counters so far (persisted)."""
        with self._lock:
            row = self._db.execute("SELECT spent FROM analytics_budget WHERE day = ?", (day,)).fetchone()
        return (row[0] if row else 0) / _MICRO

    # ------------------------------------------------------------------ reports
    def prepare(self, day: str) -> AnalyticsReport:
        """Perturb and store one report of ``day``, charging ε; :class:`BudgetExhausted` past the budget."""
        self.flush()
        with self._lock, transaction(self._db):
            row = self._db.execute("SELECT spent FROM analytics_budget WHERE day = ?", (day,)).fetchone()
            spent = row[0] if row else 0
            if spent + self._cost > self._budget:
                raise BudgetExhausted(
                    f"the ε budget of {day} is spent ({spent / _MICRO:g} of {self._budget / _MICRO:g})"
                )
            report = perturb(self.counters(day), day, self._rng)
            self._db.execute(
                "INSERT INTO analytics_pending (report_id, day, body) VALUES (?, ?, ?)",
                (report.report_id, day, encode_reports([report])),
            )
            self._db.execute(
                "INSERT INTO analytics_budget (day, spent, reports) VALUES (?, ?, 1) ON CONFLICT(day)"
                " DO UPDATE SET spent = spent + excluded.spent, reports = reports + 1",
                (day, self._cost),
            )
        log.info("analytics_report_prepared", epsilon=EPSILON)
        return report

    def due_days(self, consent_since: int | None) -> list[str]:
        """Days closed for :data:`_SETTLE` seconds, in the window, begun after consent, not yet reported."""
        if consent_since is None:
            return []
        now = self._clock()
        today, oldest = _utc_day(now - _SETTLE), _utc_day(now - WINDOW_DAYS * _DAY)
        first = _utc_day(consent_since + _DAY)  # the first day that began after the grant
        self.flush()
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT day FROM analytics_counters WHERE day < ? AND day >= ? AND day >= ?"
                " AND day NOT IN (SELECT day FROM analytics_budget) ORDER BY day",
                (today, oldest, first),
            )
            return [day for (day,) in rows]

    def prepare_due(self, consent_since: int | None) -> int:
        """Prepare a report for every due day; return how many were made."""
        made = 0
        for day in self.due_days(consent_since):
            try:
                self.prepare(day)
            except BudgetExhausted:
                log.info("analytics_budget_exhausted")
                continue
            made += 1
        return made

    def pending(self, limit: int) -> list[tuple[str, AnalyticsReport]]:
        """Stored reports waiting to be sent, oldest day first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT report_id, body FROM analytics_pending ORDER BY day, report_id LIMIT ?", (limit,)
            ).fetchall()
        return [(rid, decode_reports(bytes(body))[0]) for rid, body in rows]

    def acknowledge(self, report_ids: Iterable[str]) -> None:
        """Delete reports the cloud took (or refused for good)."""
        with self._lock, transaction(self._db):
            self._db.executemany(
                "DELETE FROM analytics_pending WHERE report_id = ?", [(r,) for r in report_ids]
            )

    def drop_pending(self) -> int:
        """Delete every stored report (consent does not hold); return how many."""
        with self._lock, transaction(self._db):
            return int(self._db.execute("DELETE FROM analytics_pending").rowcount)

    def purge_expired(self) -> int:
        """Delete counters, budgets and reports of days older than the window; return rows deleted."""
        self.flush()
        oldest = _utc_day(self._clock() - WINDOW_DAYS * _DAY)
        with self._lock, transaction(self._db):
            return sum(
                int(self._db.execute(f"DELETE FROM {table} WHERE day < ?", (oldest,)).rowcount)  # noqa: S608 - constant table names
                for table in _TABLES
            )

    def wipe(self) -> int:
        """Delete every counter, budget and stored report, buffered ones too (``forget``); return rows."""
        with self._lock, transaction(self._db):
            self._buffer.clear()
            self._buffered = 0
            return sum(
                int(self._db.execute(f"DELETE FROM {table}").rowcount)  # noqa: S608 - constant table names
                for table in _TABLES
            )

    def ensure_trigger(self) -> None:
        """Install the withdraw trigger once the consent ledger's table exists."""
        with self._lock:
            found = self._db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'consent_ledger'"
            ).fetchone()
            if found:
                self._db.executescript(_TRIGGER)


class AnalyticsSender:
    """Prepares due reports and sends them while consent to ``product_analytics`` holds."""

    def __init__(
        self,
        analytics: Analytics,
        gate: EgressGate,
        post: Post,
        *,
        recipient: str,
        log_sent: LogSent,
        close: Callable[[], None] | None = None,
    ) -> None:
        self._analytics, self._gate, self._post = analytics, gate, post
        self._recipient, self._log_sent, self._close = recipient, log_sent, close

    def close(self) -> None:
        """Close the client this sender was built with, if any."""
        if self._close is not None:
            self._close()

    def send_due(self) -> SendResult:
        """Make the reports that are due and send every stored one; delete them when not allowed."""
        self._analytics.purge_expired()
        with self._gate.sending(PURPOSE, KIND) as decision:
            if not decision.allowed:
                dropped = self._analytics.drop_pending()
                if dropped:
                    log.info("analytics_reports_dropped", dropped=dropped, reason=decision.reason)
                return SendResult(0, "not_allowed", decision.reason)
            self._analytics.ensure_trigger()
            self._analytics.prepare_due(self._gate.ledger.state(PURPOSE).since)
            return self._deliver()

    def _deliver(self) -> SendResult:
        batch = self._analytics.pending(MAX_REPORTS)
        if not batch:
            return SendResult(0, "nothing_due", "no report is due")
        ids = [report_id for report_id, _ in batch]
        payload = encode_reports([report for _, report in batch])
        try:
            self._post(payload)
        except UpstreamRejected as exc:
            self._analytics.acknowledge(ids)  # never resent as it is
            log.warning("analytics_reports_refused", reports=len(ids), status=exc.status)
            return SendResult(0, "refused", f"the cloud refused the reports ({exc.status})")
        except UpstreamUnavailable as exc:
            log.info("analytics_send_deferred", reason=str(exc))
            return SendResult(
                0, "deferred", "the cloud is unavailable; the reports are kept for the next try"
            )
        self._log_sent(self._recipient, PURPOSE, KIND, payload)
        self._analytics.acknowledge(ids)
        log.info("analytics_reports_sent", reports=len(ids))
        return SendResult(len(ids), "sent", f"{len(ids)} report(s) sent")


def sender_from_config(
    cfg: Config, analytics: Analytics, gate: EgressGate, log_sent: LogSent
) -> AnalyticsSender | None:
    """A sender to the configured cloud over an anonymous client (no token), or None without one."""
    if not cfg.upstream.url:
        return None
    from agent.upstream import ClientSettings, UpstreamClient  # noqa: PLC0415 - httpx only when sending

    up = cfg.upstream
    client = UpstreamClient(ClientSettings(up.url, up.ca_file, up.pin_sha256, up.timeout))  # no token
    names = ", ".join(r.name for r in gate.purposes.get(PURPOSE).recipients)
    recipient = f"{names} ({client.recipient})"
    return AnalyticsSender(
        analytics, gate, _poster(client), recipient=recipient, log_sent=log_sent, close=client.close
    )


def _poster(client: UpstreamClient) -> Post:
    def post(payload: bytes) -> Mapping[str, Any]:
        return client.send_analytics(payload)

    return post
