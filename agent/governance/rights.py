"""Data subject rights: export (GDPR Art. 15 and 20) and forget (Art. 17).

**Which pseudonyms this install has used** is kept by :mod:`agent.governance.retention`
(:func:`~agent.governance.retention.pseudonyms_used`): every pseudonym read out of the transparency
log and the outbox, plus the one of the period in force now.

**Forget.** For every pseudonym used, ``DELETE /v1/subjects/{p}`` and wait for the receipt. When the
cloud cannot be reached (or refuses), the pseudonym goes into ``erasure_pending`` and
:func:`retry_pending_erasures` (the service, on its purge schedule; or the next ``forget``) sends it
later. Erasure requests are a legal obligation, not a purpose: the egress gate does not hold them.
Then the local store is wiped (outbox, verdict cache, transparency log, scan history, quarantine,
the consent ledger, pseudonyms), log and spool files are deleted, the database is vacuumed, and the
data key and the master secret are crypto-shredded. What stays: ``erasure_pending`` (until sent),
``erasure_receipts`` (receipt id, count, time, recipient; no pseudonym) as the proof, counters
(totals only), the enrolment token (to send the pending erasures), rules and the prefix list.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from agent.config import Config
from agent.errors import AgentError, UpstreamError
from agent.governance.analytics import Analytics
from agent.governance.consent import ConsentLedger
from agent.governance.history import History
from agent.governance.purposes import load_purposes
from agent.governance.quarantine import Quarantine
from agent.governance.retention import forget_pseudonyms, pseudonyms_used
from agent.governance.vault import KEY_FILE, DataKey, connect, shred_file, transaction

if TYPE_CHECKING:
    from agent.upstream import UpstreamClient

__all__ = [
    "EXPORT_FORMAT",
    "ClientFactory",
    "ErasureReport",
    "ForgetReport",
    "Receipt",
    "export",
    "export_document",
    "forget",
    "retry_pending_erasures",
]

log = structlog.get_logger("endpoint-agent")
EXPORT_FORMAT = "endpoint-agent-export/1"
ClientFactory = Callable[[Config], "UpstreamClient | None"]
_SCHEMA = """
CREATE TABLE IF NOT EXISTS erasure_pending (
    pseudonym TEXT PRIMARY KEY, queued INTEGER NOT NULL, attempts INTEGER NOT NULL, last_error TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS erasure_receipts (
    receipt_id TEXT PRIMARY KEY, recipient TEXT NOT NULL, erased INTEGER NOT NULL,
    erased_at TEXT NOT NULL, received INTEGER NOT NULL
) WITHOUT ROWID;
"""
_WIPED_TABLES = ("verdict_cache", "sent_log")
_WIPED_DIRS = ("logs", "spool")


@dataclass(frozen=True, slots=True)
class Receipt:
    """The cloud's proof that the records under one pseudonym were erased."""

    pseudonym: str
    receipt_id: str
    erased: int
    erased_at: str


@dataclass(slots=True)
class ErasureReport:
    """What a round of erasure requests did: receipts, and pseudonyms still pending with the reason."""

    recipient: str = ""
    receipts: list[Receipt] = field(default_factory=list)
    pending: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ForgetReport:
    """What ``forget`` erased where."""

    cloud: ErasureReport
    local: dict[str, int] = field(default_factory=dict)
    shredded: list[str] = field(default_factory=list)

    def render(self) -> str:
        """The report for the terminal: the cloud's receipts, what stays pending, local deletions."""
        where = self.cloud.recipient or "the security cloud"
        lines = [f"Security cloud ({where}):"]
        lines += [
            f"  erased {r.erased} records under pseudonym {r.pseudonym}:"
            f" receipt {r.receipt_id} at {r.erased_at}"
            for r in self.cloud.receipts
        ]
        lines += [f"  PENDING {p}: {why} (retried by the service)" for p, why in self.cloud.pending.items()]
        if not self.cloud.receipts and not self.cloud.pending:
            lines.append("  nothing of this install was sent there")
        lines.append("This device:")
        lines += [f"  {name:<16} {count:>7} deleted" for name, count in self.local.items()]
        lines += [f"  {name}: crypto-shredded" for name in self.shredded]
        return "\n".join(lines)


# ---------------------------------------------------------------------- export


def export_document(config: Config, now: float | None = None) -> dict[str, Any]:
    """Everything this install holds about its user, as one JSON-ready document."""
    when = time.time() if now is None else now
    state = config.state_dir
    key = DataKey.load_or_create(state)
    purposes = load_purposes(config)
    with ConsentLedger.open(state, purposes) as ledger:
        check, entries = ledger.verify(), [e.as_dict() for e in ledger.entries()]
    with History(state / "agent.db", key) as history:
        scans = [e.as_dict() for e in history.entries()]
    with Quarantine(state, key) as quarantine:
        quarantined = [i.as_dict() for i in quarantine.entries()]
    with Analytics.open(state) as analytics:  # counts only, never a path or a value
        days = [asdict(day) for day in analytics.days()]
    return {
        "format": EXPORT_FORMAT,
        "exported_at": _iso(when),
        "scan_history": scans,
        "consent_ledger": {"policy_version": purposes.version, "verified": check.ok, "entries": entries},
        "pseudonyms": pseudonyms_used(config, when),
        **_tables(state / "agent.db"),
        "quarantine": quarantined,
        "analytics": days,
    }


def export(config: Config, out_file: Path, now: float | None = None) -> dict[str, int]:
    """Write :func:`export_document` to ``out_file`` (0600, replaced atomically); return counts."""
    document = export_document(config, now)
    text = json.dumps(document, indent=1, sort_keys=True) + "\n"  # ASCII: any file name round-trips
    tmp = out_file.with_name(f".{out_file.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(out_file)
    return {
        "scan_history": len(document["scan_history"]),
        "consent_ledger": len(document["consent_ledger"]["entries"]),
        "pseudonyms": len(document["pseudonyms"]),
        "transparency_log": len(document["transparency_log"]),
        "outbox": len(document["outbox"]),
        "quarantine": len(document["quarantine"]),
        "analytics_days": len(document["analytics"]),
    }


def _tables(path: Path) -> dict[str, Any]:
    db = connect(path, _SCHEMA)
    try:
        sent = db.execute(
            "SELECT time, recipient, purpose, kind, payload FROM sent_log ORDER BY id"
        ).fetchall()
        queued = db.execute(
            "SELECT created, purpose, body FROM outbox ORDER BY created, record_id"
        ).fetchall()
        pending = db.execute("SELECT pseudonym, queued, attempts, last_error FROM erasure_pending").fetchall()
        receipts = db.execute(
            "SELECT receipt_id, recipient, erased, erased_at, received FROM erasure_receipts"
            " ORDER BY received"
        ).fetchall()
    finally:
        db.close()
    return {
        "transparency_log": [
            {"time": t, "recipient": r, "purpose": p, "kind": k, "payload": _payload(bytes(b))}
            for t, r, p, k, b in sent
        ],
        "outbox": [{"queued": c, "purpose": p, "record": _payload(bytes(b))} for c, p, b in queued],
        "erasure": {
            "pending": [
                dict(zip(("pseudonym", "queued", "attempts", "last_error"), r, strict=True)) for r in pending
            ],
            "receipts": [
                dict(zip(("receipt_id", "recipient", "erased", "erased_at", "received"), r, strict=True))
                for r in receipts
            ],
        },
    }


def _payload(body: bytes) -> Any:  # noqa: ANN401 - whatever JSON the payload holds
    try:
        return json.loads(body)
    except ValueError:
        return {"base64": base64.b64encode(body).decode()}


def _iso(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------- forget


def forget(
    config: Config, client_factory: ClientFactory | None = None, now: float | None = None
) -> ForgetReport:
    """Erase this install's records upstream (or queue that), wipe the local store, shred the keys."""
    when = time.time() if now is None else now
    state = config.state_dir
    used = pseudonyms_used(config, when)
    db = connect(state / "agent.db", _SCHEMA)
    try:
        with transaction(db):  # nothing more of this install leaves from here on
            queued = (
                db.execute("DELETE FROM outbox").rowcount + db.execute("DELETE FROM outbox_poison").rowcount
            )
        # a pseudonym never sent can be upstream only if a cloud stored a batch whose acknowledgement
        # was lost (the records are still queued): worth asking whenever a cloud is configured
        _queue(db, [u["pseudonym"] for u in used if u["sent"] or config.upstream.url], when)
    finally:
        db.close()
    cloud = retry_pending_erasures(config, client_factory, when)
    local = {"outbox": queued, **_wipe_local(config)}
    if not cloud.pending:  # erased upstream: end the enrolment too, so nothing is sent under fresh keys
        from agent.upstream.enroll import unenroll  # noqa: PLC0415 - only forget needs it

        local["upstream_enrolment"] = int(unenroll(config))
    shredded = [name for name in (KEY_FILE, "master.key") if shred_file(state / name)]
    _vacuum(state / "agent.db")
    log.info("install_forgotten", erased=len(cloud.receipts), pending=len(cloud.pending))
    return ForgetReport(cloud, local, shredded)


def retry_pending_erasures(
    config: Config, client_factory: ClientFactory | None = None, now: float | None = None
) -> ErasureReport:
    """Send every queued erasure request; drop each that got its receipt; return what happened."""
    when = int(time.time() if now is None else now)
    factory = client_factory or _default_client
    db = connect(config.state_dir / "agent.db", _SCHEMA)
    try:
        pending = [
            p for (p,) in db.execute("SELECT pseudonym FROM erasure_pending ORDER BY queued, pseudonym")
        ]
        if not pending:
            return ErasureReport()
        try:
            client = factory(config)
        except AgentError as exc:  # no token, a bad CA file: keep the queue and say why
            return _failed_all(db, pending, str(exc))
        if client is None:
            return _failed_all(db, pending, "no security cloud is configured")
        with client:
            return _send_erasures(db, client, pending, when)
    finally:
        db.close()


def _send_erasures(
    db: sqlite3.Connection, client: UpstreamClient, pending: list[str], when: int
) -> ErasureReport:
    report = ErasureReport(recipient=client.recipient)
    for pseudonym in pending:
        try:
            answer = client.erase(pseudonym)
            receipt = Receipt(
                pseudonym, str(answer["receipt_id"]), int(answer["erased"]), str(answer["erased_at"])
            )
        except (UpstreamError, KeyError, TypeError, ValueError) as exc:
            report.pending[pseudonym] = str(exc) or type(exc).__name__
            continue
        report.receipts.append(receipt)
        with transaction(db):
            db.execute("DELETE FROM erasure_pending WHERE pseudonym = ?", (pseudonym,))
            db.execute(
                "INSERT OR REPLACE INTO erasure_receipts (receipt_id, recipient, erased, erased_at, received)"
                " VALUES (?, ?, ?, ?, ?)",
                (receipt.receipt_id, client.recipient, receipt.erased, receipt.erased_at, when),
            )
    _mark_failed(db, report.pending)
    log.info("erasures_sent", receipts=len(report.receipts), pending=len(report.pending))
    return report


def _failed_all(db: sqlite3.Connection, pending: list[str], reason: str) -> ErasureReport:
    report = ErasureReport(pending=dict.fromkeys(pending, reason))
    _mark_failed(db, report.pending)
    log.warning("erasures_pending", pending=len(pending), reason=reason)
    return report


def _mark_failed(db: sqlite3.Connection, failed: dict[str, str]) -> None:
    with transaction(db):
        db.executemany(
            "UPDATE erasure_pending SET attempts = attempts + 1, last_error = ? WHERE pseudonym = ?",
            [(why[:300], p) for p, why in failed.items()],
        )


def _queue(db: sqlite3.Connection, pseudonyms: list[str], when: float) -> None:
    with transaction(db):
        db.executemany(
            "INSERT OR IGNORE INTO erasure_pending (pseudonym, queued, attempts, last_error)"
            " VALUES (?, ?, 0, '')",
            [(p, int(when)) for p in pseudonyms],
        )


def _wipe_local(config: Config) -> dict[str, int]:
    state = config.state_dir
    counts: dict[str, int] = {}
    db = connect(state / "agent.db", _SCHEMA)
    try:
        with transaction(db):
            for table in _WIPED_TABLES:
                counts[table] = int(db.execute(f"DELETE FROM {table}").rowcount)  # noqa: S608 - constant names
            counts["pseudonyms"] = forget_pseudonyms(db)
    finally:
        db.close()
    key = DataKey.load_or_create(state)
    with History(state / "agent.db", key) as history:
        counts["scan_history"] = history.wipe()
    with Quarantine(state, key) as quarantine:
        counts["quarantine"] = quarantine.wipe()
    with Analytics.open(state) as analytics:
        counts["analytics"] = analytics.wipe()
    with ConsentLedger.open(state, load_purposes(config)) as ledger:
        counts["consent_ledger"] = len(ledger.entries())
        ledger.erase()
    counts["files"] = sum(_remove_tree(state / name) for name in _WIPED_DIRS)
    return counts


def _remove_tree(root: Path) -> int:
    if not root.is_dir():
        return 0
    count = sum(len(files) for _dir, _dirs, files in os.walk(root))
    shutil.rmtree(root)
    return count


def _vacuum(path: Path) -> None:
    """Rebuild the file without free pages, and truncate the WAL: wiped rows leave nothing behind."""
    db = connect(path)
    try:
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except sqlite3.OperationalError as exc:  # another process holds the file: the rows are zeroed anyway
        log.warning("store_vacuum_skipped", error=str(exc))
    finally:
        db.close()


def _default_client(config: Config) -> UpstreamClient | None:
    from agent.upstream import client_from_config  # noqa: PLC0415 - httpx only when erasing upstream

    return client_from_config(config)
