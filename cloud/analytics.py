"""``POST /v1/analytics``: anonymous analytics reports, stored without a client identifier, and the estimator.

Request: ``Content-Type: application/json`` (``Content-Encoding: gzip`` allowed), a JSON list of 1 to
31 reports (:class:`agent.minimize.analytics.AnalyticsReport`: ``schema``, ``report_id``, ``day``,
``counter``, ``bit``). **No token**: a request carrying ``Authorization`` or ``Cookie`` is refused
(400 ``identified_request``), so a report can never be tied to an install by mistake. 200
``{"accepted": n, "duplicate": m}``; a ``report_id`` already stored is a duplicate (a retry) and is
not stored again. Refusals store nothing: 400 ``malformed_body`` / ``bad_gzip`` /
``identified_request``, 413 ``body_too_large`` / ``inflated_too_large`` (16 KiB each), 415
``unsupported_media_type``, 422 ``invalid_report`` (unknown field, unknown counter, a day that does
not exist, is more than a day ahead, or is older than :data:`RETENTION_DAYS`), 429 ``rate_limited``.

Abuse protection: the size limits above, and a token bucket per client address (burst
:data:`BURST`, :data:`RATE` per second), held in memory only under a salted hash of the address
that changes with every start; the address is never written anywhere. Loopback clients are not
limited (tests, the harness, a reverse proxy on the same host; such a proxy must limit by itself).

Storage: ``analytics_reports(report_id, day, counter, bit)``, ``WITHOUT ROWID`` and keyed by the
random ``report_id``, so not even the order of arrival is kept; no time, no address, no token.

Estimation (:meth:`AnalyticsStore.estimate`): with ``N`` reports for a day and ``N_j`` of them for
counter ``j``, the total is ``N / N_j * Σ v̂`` with ``v̂`` from
:func:`agent.minimize.analytics.unbiased`: unbiased for the sum over the reporting installs of their
(capped) counter. The standard error is the plug-in ``N * sqrt(s² / N_j)`` with ``s²`` the sample
variance of the ``v̂``. A counter no report sampled has no estimate.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import math
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import msgspec
import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cloud.body import media_of, read_body
from cloud.errors import RequestRejected
from cloud.ratelimit import RateLimiter
from cloud.schema import COUNTERS, AnalyticsReport, decode_reports, unbiased
from cloud.store import transaction

__all__ = [
    "BURST",
    "MAX_BODY",
    "RATE",
    "RETENTION_DAYS",
    "AnalyticsIntake",
    "AnalyticsStore",
    "Estimate",
    "estimate_rows",
    "receive",
]

log = structlog.get_logger("endpoint-cloud")
MAX_BODY = 16 * 1024
RATE, BURST = 1.0, 60
RETENTION_DAYS = 395  # rules/purposes.toml, product_analytics.retention_days
_SCHEMA = """
CREATE TABLE IF NOT EXISTS analytics_reports (
    report_id TEXT PRIMARY KEY, day TEXT NOT NULL, counter TEXT NOT NULL, bit INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS analytics_reports_by_day ON analytics_reports(day);
"""


@dataclass(frozen=True, slots=True)
class Estimate:
    """Estimated totals of one day over the installs that reported it."""

    day: str
    reports: int
    totals: Mapping[str, float]
    stderr: Mapping[str, float]
    sampled: Mapping[str, int]


def estimate_rows(day: str, rows: Iterable[tuple[str, int]]) -> Estimate:
    """Invert the randomized response of ``(counter, bit)`` rows into totals and standard errors."""
    values: dict[str, list[float]] = {c.name: [] for c in COUNTERS}
    reports = 0
    for counter, bit in rows:
        reports += 1
        if counter in values:
            values[counter].append(unbiased(counter, bit))
    totals: dict[str, float] = {}
    stderr: dict[str, float] = {}
    for name, seen in values.items():
        if not seen:
            continue
        mean = math.fsum(seen) / len(seen)
        totals[name] = reports * mean
        spread = math.fsum((v - mean) ** 2 for v in seen) / (len(seen) - 1) if len(seen) > 1 else math.inf
        stderr[name] = reports * math.sqrt(spread / len(seen))
    sampled = {name: len(seen) for name, seen in values.items()}
    return Estimate(day=day, reports=reports, totals=totals, stderr=stderr, sampled=sampled)


class AnalyticsStore:
    """Stored analytics reports, in the records database (a table of their own)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        conn.executescript(_SCHEMA)

    def store_batch(self, reports: Sequence[AnalyticsReport]) -> tuple[int, int]:
        """Store reports in one transaction; returns (accepted, duplicate) by ``report_id``."""
        rows = [(r.report_id, r.day, r.counter, r.bit) for r in reports]
        with transaction(self.conn):
            before = self.conn.total_changes
            self.conn.executemany(
                "INSERT OR IGNORE INTO analytics_reports (report_id, day, counter, bit) VALUES (?, ?, ?, ?)",
                rows,
            )
            accepted = self.conn.total_changes - before
        return accepted, len(rows) - accepted

    def rows(self, day: str) -> list[tuple[str, int]]:
        """The ``(counter, bit)`` of every report of ``day``."""
        found = self.conn.execute("SELECT counter, bit FROM analytics_reports WHERE day = ?", (day,))
        return [(counter, int(bit)) for counter, bit in found]

    def days(self) -> list[str]:
        """The days with reports, oldest first."""
        return [d for (d,) in self.conn.execute("SELECT DISTINCT day FROM analytics_reports ORDER BY day")]

    def estimate(self, day: str) -> Estimate:
        """The estimated totals of ``day``."""
        return estimate_rows(day, self.rows(day))

    def purge_before(self, day: str) -> int:
        """Delete the reports of days before ``day`` (retention); return how many."""
        with transaction(self.conn):
            return int(self.conn.execute("DELETE FROM analytics_reports WHERE day < ?", (day,)).rowcount)


class AnalyticsIntake:
    """What the endpoint needs: the store and a rate limiter keyed by salted address hashes."""

    def __init__(self, conn: sqlite3.Connection, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = AnalyticsStore(conn)
        self.limiter = RateLimiter(RATE, BURST, clock)
        self._salt = secrets.token_bytes(16)

    def admit(self, request: Request) -> None:
        """Refuse identified requests; take one request from a non-loopback address's bucket."""
        if "authorization" in request.headers or "cookie" in request.headers:
            raise RequestRejected(
                400, "identified_request", "analytics are anonymous: send no Authorization or Cookie"
            )
        address = request.client.host if request.client is not None else ""
        if _loopback(address):
            return
        key = hashlib.blake2b(address.encode(), key=self._salt, digest_size=16).digest()
        wait = self.limiter.acquire(key)
        if wait:
            raise RequestRejected(429, "rate_limited", "too many requests", {"Retry-After": str(wait)})


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _check_days(reports: Sequence[AnalyticsReport]) -> None:
    today = dt.datetime.now(dt.UTC).date()
    for index, report in enumerate(reports):
        day = dt.date.fromisoformat(report.day)
        if day > today + dt.timedelta(days=1) or day < today - dt.timedelta(days=RETENTION_DAYS):
            raise RequestRejected(422, "invalid_report", f"$[{index}].day is outside the accepted range")


async def receive(request: Request) -> Response:
    """Store a batch of anonymous analytics reports, all or nothing."""
    intake = cast("AnalyticsIntake", request.app.state.service.analytics)
    intake.admit(request)
    if media_of(request) != "json":
        raise RequestRejected(415, "unsupported_media_type", "analytics reports are application/json")
    body = await read_body(request, MAX_BODY, MAX_BODY)
    try:
        reports = decode_reports(body)
    except msgspec.ValidationError as exc:
        log.info("analytics_rejected", error="invalid_report")
        raise RequestRejected(422, "invalid_report", str(exc)) from exc
    except msgspec.DecodeError as exc:
        log.info("analytics_rejected", error="malformed_body")
        raise RequestRejected(400, "malformed_body", str(exc)) from exc
    _check_days(reports)
    accepted, duplicate = intake.store.store_batch(reports)
    log.info("analytics_stored", reports=len(reports), accepted=accepted, duplicate=duplicate)
    return JSONResponse({"accepted": accepted, "duplicate": duplicate})
