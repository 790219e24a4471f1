"""Retention: a time-travel purge leaves no expired row or file in any local store, and keeps the rest."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import sqlite3
import time

import pytest
from rights_helpers import DAY, load_config, record  # type: ignore[import-not-found, unused-ignore]

from agent.governance.history import History, HistoryRow
from agent.governance.quarantine import Quarantine
from agent.governance.retention import LOG_DIR, STORES, Retention, pseudonyms_used, purge
from agent.governance.vault import DataKey
from agent.minimize.wire import encode_record
from agent.model import StatKey
from agent.outbox import Store

AGES = (0.5, 10.5, 13.5, 14.5, 29.5, 30.5, 89.5, 90.5, 200.5, 364.5, 365.5, 400.5)  # days
TTL = dataclasses.asdict(Retention())


def _fill(cfg, now: float) -> dict[str, str]:
    """One entry per age in every store; return the pseudonym sent at each age (by age)."""
    state = cfg.state_dir
    store = Store(state / "agent.db", ruleset="r")
    key = DataKey.load_or_create(state)
    sent: dict[str, str] = {}
    try:
        for i, age in enumerate(AGES):
            when = now - age * DAY
            _fill_store(store, state, i, when, sent)
            with History(state / "agent.db", key) as history:
                history.record([HistoryRow(int(when), "malicious", ("X",), "executable", f"/home/u/f{i}")])
            with Quarantine(state, key, clock=_fixed(when)) as quarantine:
                sample = state.parent / f"sample{i}.exe"
                sample.write_bytes(b"x" * i)
                quarantine.add(sample)
            log_file = state / LOG_DIR / f"bundle{i}.log"
            log_file.parent.mkdir(exist_ok=True)
            log_file.write_text("log")
            os.utime(log_file, (when, when))
    finally:
        store.close()
    return sent


def _fixed(when: float):
    return lambda: when


def _fill_store(store: Store, state, i: int, when: float, sent: dict[str, str]) -> None:
    """A cache row, a queued and a poisoned record and a sent payload, back-dated to ``when``."""
    moment = dt.datetime.fromtimestamp(when, dt.UTC)
    queued, poisoned, delivered = (record(f"{i:02x}" * 16, moment) for _ in range(3))
    stat = StatKey(1, i, 1, 1, 1)
    store.persist([(stat, b"v")], [queued, poisoned])
    store.poison(poisoned.record_id, "bad")
    store.log_sent("cloud.example", "protection", "verdicts", b"[" + encode_record(delivered) + b"]")
    sent[str(i)] = delivered.pseudonym
    db = sqlite3.connect(state / "agent.db")
    try:
        with db:
            db.execute(
                "UPDATE verdict_cache SET created = ? WHERE key = ?", (int(when), store.cache_key(stat))
            )
            db.execute("UPDATE outbox SET created = ? WHERE record_id = ?", (int(when), queued.record_id))
            db.execute(
                "UPDATE outbox_poison SET created = ? WHERE record_id = ?", (int(when), poisoned.record_id)
            )
            db.execute("UPDATE sent_log SET time = ? WHERE id = (SELECT max(id) FROM sent_log)", (int(when),))
    finally:
        db.close()


def _times(cfg) -> dict[str, list[float]]:
    """The time of every entry left in every store."""
    state = cfg.state_dir
    db = sqlite3.connect(state / "agent.db")
    try:
        found = {
            "history": [t for (t,) in db.execute("SELECT time FROM scan_history")],
            "cache": [t for (t,) in db.execute("SELECT created FROM verdict_cache")],
            "outbox": [
                t
                for (t,) in db.execute(
                    "SELECT created FROM outbox UNION ALL SELECT created FROM outbox_poison"
                )
            ],
            "sent_log": [t for (t,) in db.execute("SELECT time FROM sent_log")],
            "quarantine": [t for (t,) in db.execute("SELECT added FROM quarantine")],
        }
    finally:
        db.close()
    found["logs"] = [p.stat().st_mtime for p in (state / LOG_DIR).iterdir()]
    found["quarantine_files"] = [p.stat().st_mtime for p in (state / "quarantine").iterdir()]
    return found


def test_default_retention_values():
    """The defaults: history 90, cache 30, outbox 30, transparency log 365, quarantine 30, logs 14 days."""
    assert Retention() == Retention(90, 30, 30, 365, 30, 14, 3600.0)
    assert set(STORES) == {name.removesuffix("_days") for name in TTL if name.endswith("_days")}


def test_time_travel_purge_empties_every_store_of_expired_entries(agent_home):
    """At each point in time, a purge leaves exactly the entries younger than each store's TTL."""
    cfg = load_config(agent_home)
    now = time.time()
    _fill(cfg, now)
    for later in (0, 5, 40, 400):
        when = now + later * DAY
        report = purge(cfg, when)
        for store, times in _times(cfg).items():
            if store == "quarantine_files":
                assert len(times) == len(_times(cfg)["quarantine"])
                continue
            cutoff = when - TTL[f"{store}_days"] * DAY
            assert all(t >= cutoff for t in times), (later, store)
            alive = [a for a in AGES if now - a * DAY >= cutoff]
            expected = 2 * len(alive) if store == "outbox" else len(alive)
            assert len(times) == expected, (later, store)
        assert set(report.deleted) >= set(STORES)
    assert all(not times for times in _times(cfg).values())


def test_purge_reports_counts_per_store(agent_home):
    """The report counts what each store lost, and nothing when nothing has expired."""
    cfg = load_config(agent_home)
    now = time.time()
    _fill(cfg, now)
    report = purge(cfg, now)
    expired = {store: sum(1 for a in AGES if a > TTL[f"{store}_days"]) for store in STORES}
    expired["outbox"] *= 2  # a queued and a set-aside record per age
    assert {s: report.deleted[s] for s in STORES} == expired
    assert purge(cfg, now).total == 0
    assert "history" in report.render()


def test_pseudonyms_outlive_the_transparency_log_rows_that_showed_them(agent_home):
    """Before sent_log rows go, their pseudonyms are noted, and kept while the cloud may hold records."""
    cfg = load_config(agent_home)
    now = time.time()
    sent = _fill(cfg, now)
    purge(cfg, now)
    used = {u["pseudonym"] for u in pseudonyms_used(cfg, now) if u["sent"]}
    by_age = dict(zip(AGES, (sent[str(i)] for i in range(len(AGES))), strict=True))
    assert by_age[365.5] in used  # its sent_log row expired (365 days), the cloud may keep it 395
    assert by_age[400.5] not in used  # older than any retention: no record can remain upstream
    assert {by_age[a] for a in AGES if a < 395} <= used


def test_purge_leaves_the_wal_truncated(agent_home):
    """After a purge the WAL is checkpointed and truncated: no old frames of deleted rows remain."""
    cfg = load_config(agent_home)
    _fill(cfg, time.time())
    purge(cfg, time.time() + 400 * DAY)
    wal = cfg.state_dir / "agent.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0


@pytest.mark.parametrize("store", STORES)
def test_cutoff_per_store(store):
    """Retention.cutoff(store, now) is now minus that store's TTL in days."""
    assert Retention().cutoff(store, 1_000_000_000) == 1_000_000_000 - TTL[f"{store}_days"] * DAY


def test_rows_logged_after_the_log_was_emptied_are_still_harvested(agent_home):
    """When a purge empties the transparency log, its next rows (numbered from 1 again) are still read."""
    cfg = load_config(agent_home)
    now = time.time()
    moment = dt.datetime.fromtimestamp(now, dt.UTC)
    store = Store(cfg.state_dir / "agent.db")
    try:
        for _ in range(3):
            store.log_sent(
                "c", "protection", "verdicts", b"[" + encode_record(record("aa" * 16, moment)) + b"]"
            )
        purge(cfg, now + 366 * DAY)  # harvests "aa..." and empties the log
        store.log_sent("c", "protection", "verdicts", b"[" + encode_record(record("bb" * 16, moment)) + b"]")
    finally:
        store.close()
    assert "bb" * 16 in {u["pseudonym"] for u in pseudonyms_used(cfg, now)}
