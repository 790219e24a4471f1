"""Export (Art. 15/20) and forget (Art. 17) on a real agent home, without a cloud or with one unreachable."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import stat
import time

import pytest
from rights_helpers import (  # type: ignore[import-not-found, unused-ignore]
    forms,
    load_config,
    my_pseudonym,
    raw_store_bytes,
    record,
    rows,
)

from agent.governance import ConsentLedger
from agent.governance.analytics import Analytics
from agent.governance.history import History, HistoryRow
from agent.governance.purposes import load_purposes, render_notice
from agent.governance.quarantine import Quarantine
from agent.governance.retention import pseudonyms_used
from agent.governance.rights import EXPORT_FORMAT, export, forget, retry_pending_erasures
from agent.governance.vault import DataKey
from agent.minimize.wire import encode_record
from agent.outbox import Store
from agent.upstream import ClientSettings, UpstreamClient

CANARY = "/home/zq7canary/Documents/zq7canary-report.docm"
ODD = "/home/zq7canary/caf\udce9-\ud800.bin"  # undecodable byte (surrogate escape) and a lone surrogate
NOW = dt.datetime.now(dt.UTC)


def _populate(cfg) -> dict:
    """A history, consent, sent and queued records, a quarantined file and a log file; return what was put."""
    state = cfg.state_dir
    key = DataKey.load_or_create(state)
    with History(state / "agent.db", key) as history:
        history.record(
            [HistoryRow(int(time.time()), "malicious", ("X",), "document", p) for p in (CANARY, ODD)]
        )
    purposes = load_purposes(cfg)
    with ConsentLedger.open(state, purposes) as ledger:
        notice = render_notice(purposes, purposes.get("product_analytics"))
        ledger.grant("product_analytics", notice)
    mine = my_pseudonym(state, NOW)
    last_month = my_pseudonym(state, NOW - dt.timedelta(days=40))
    sent = [record(mine, NOW), record(last_month, NOW - dt.timedelta(days=40))]
    queued = record(mine, NOW)
    store = Store(state / "agent.db", ruleset="r")
    try:
        store.persist([], [queued])
        store.log_sent(
            "cloud.example", "protection", "verdicts", b"[" + b",".join(map(encode_record, sent)) + b"]"
        )
    finally:
        store.close()
    sample = state.parent / "zq7canary-dropper.exe"
    sample.write_bytes(b"dropper")
    with Quarantine(state, key) as quarantine:
        quarantine.add(sample, ("Shell_Dropper",))
    (state / "logs").mkdir()
    (state / "logs" / "agent.log").write_text("a log line\n")
    with Analytics.open(state) as analytics:  # counted whether or not analytics may be sent
        analytics.count_run()
    return {"sent": sent, "queued": queued, "pseudonyms": {mine, last_month}, "sample": str(sample)}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unreachable(_cfg) -> UpstreamClient:
    """A real client for a cloud that is not there (nothing listens on the port)."""
    return UpstreamClient(ClientSettings(url=f"https://127.0.0.1:{_closed_port()}", timeout=5), "token")


def test_export_holds_history_ledger_pseudonyms_and_transparency_log(agent_home, tmp_path):
    """The export has the decrypted history, the ledger, every pseudonym used, what was sent and queued."""
    cfg = load_config(agent_home)
    put = _populate(cfg)
    out = tmp_path / "export.json"
    counts = export(cfg, out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    doc = json.loads(out.read_text(encoding="ascii"))
    assert doc["format"] == EXPORT_FORMAT
    assert [e["path"] for e in doc["scan_history"]] == [CANARY, ODD]
    with ConsentLedger.open(cfg.state_dir, load_purposes(cfg)) as ledger:
        assert doc["consent_ledger"]["entries"] == [e.as_dict() for e in ledger.entries()]
    assert doc["consent_ledger"]["verified"] is True
    used = {p["pseudonym"] for p in doc["pseudonyms"]}
    assert used >= put["pseudonyms"] | {my_pseudonym(cfg.state_dir, NOW)}
    (entry,) = doc["transparency_log"]
    assert entry["payload"] == [json.loads(encode_record(r)) for r in put["sent"]]
    assert [o["record"]["record_id"] for o in doc["outbox"]] == [put["queued"].record_id]
    assert [q["path"] for q in doc["quarantine"]] == [put["sample"]]
    (day,) = doc["analytics"]  # the local counters are the user's data too
    assert sum(day["counters"].values()) >= 1
    assert counts == {
        "scan_history": 2,
        "consent_ledger": 1,
        "pseudonyms": len(doc["pseudonyms"]),
        "transparency_log": 1,
        "outbox": 1,
        "quarantine": 1,
        "analytics_days": 1,
    }


def test_forget_wipes_everything_local_and_shreds_the_keys(agent_home):
    """With nothing ever sent and no cloud, forget erases every local store, deletes logs, shreds both keys."""
    cfg = load_config(agent_home)
    put = _populate(cfg)
    state = cfg.state_dir
    assert rows(state, "SELECT count(*) FROM sent_log") == [(1,)]
    report = forget(cfg, lambda _cfg: None)
    assert not (state / "data.key").exists()
    assert not (state / "master.key").exists()
    assert report.shredded == ["data.key", "master.key"]
    tables = ("scan_history", "verdict_cache", "outbox", "outbox_poison", "sent_log", "quarantine")
    for table in (*tables, "analytics_counters", "analytics_budget", "analytics_pending"):
        assert rows(state, f"SELECT count(*) FROM {table}") == [(0,)], table  # noqa: S608 - constant names
    assert rows(state, "SELECT name FROM sqlite_master WHERE name LIKE 'consent%'") == []
    assert list((state / "quarantine").iterdir()) == []
    assert not (state / "logs").exists()
    assert report.local["scan_history"] == 2
    assert report.local["consent_ledger"] == 1
    assert report.local["outbox"] == 1
    assert report.local["quarantine"] == 1
    assert report.local["analytics"] >= 1
    # sent before, but no cloud configured now: the erasures wait for one
    assert set(report.cloud.pending) >= put["pseudonyms"]


def test_forget_with_nothing_sent_and_no_cloud_leaves_nothing_pending(agent_home):
    """When nothing ever left the device and no cloud is configured, there is nothing to erase upstream."""
    cfg = load_config(agent_home)
    DataKey.load_or_create(cfg.state_dir)
    with History(cfg.state_dir / "agent.db", DataKey.load_or_create(cfg.state_dir)) as history:
        history.record([HistoryRow(1, "malicious", (), None, CANARY)])
    report = forget(cfg, lambda _cfg: None)
    assert report.cloud.pending == {}
    assert report.cloud.receipts == []
    assert rows(cfg.state_dir, "SELECT count(*) FROM erasure_pending") == [(0,)]
    assert "nothing of this install was sent there" in report.render()


def test_no_trace_of_the_install_remains_in_the_local_store(agent_home):
    """After forget (erasures pending aside), no path, record id or hash is in any byte of agent.db*."""
    cfg = load_config(agent_home)
    put = _populate(cfg)
    forget(cfg, lambda _cfg: None)
    raw = raw_store_bytes(cfg.state_dir)
    for needle in ("zq7canary", put["queued"].record_id, *(r.record_id for r in put["sent"])):
        for form in forms(needle):
            assert form not in raw, needle
    for r in put["sent"]:
        assert r.sha256.encode() not in raw


def test_unreachable_cloud_queues_the_erasures(agent_home):
    """When the cloud cannot be reached, every pseudonym used waits in erasure_pending with the reason."""
    cfg = load_config(agent_home)
    put = _populate(cfg)
    report = forget(cfg, _unreachable)
    assert set(report.cloud.pending) >= put["pseudonyms"]
    pending = dict(rows(cfg.state_dir, "SELECT pseudonym, attempts FROM erasure_pending"))
    assert set(pending) >= put["pseudonyms"]
    assert set(pending.values()) == {1}
    assert "PENDING" in report.render()
    again = retry_pending_erasures(cfg, _unreachable)
    assert set(again.pending) == set(pending)
    assert set(dict(rows(cfg.state_dir, "SELECT pseudonym, attempts FROM erasure_pending")).values()) == {2}


def test_a_configuration_problem_keeps_the_queue(agent_home):
    """A client factory that fails (no token) leaves the erasures queued with its reason."""
    from agent.errors import ConfigError

    cfg = load_config(agent_home)
    _populate(cfg)

    def broken(_cfg):
        raise ConfigError("no upstream token; run endpoint-agent enroll")

    report = forget(cfg, broken)
    assert report.cloud.pending
    assert all("no upstream token" in why for why in report.cloud.pending.values())


def test_pseudonyms_used_includes_the_current_one(agent_home):
    """Even on a fresh install the pseudonym of the period in force is listed (not yet sent)."""
    cfg = load_config(agent_home)
    (only,) = pseudonyms_used(cfg)
    assert only["pseudonym"] == my_pseudonym(cfg.state_dir, NOW)
    assert only["sent"] is False


@pytest.mark.parametrize("payload", [b"not json", b"{}", b'[{"pseudonym": 5}]', b"[1, 2]"])
def test_payloads_without_records_are_skipped(agent_home, payload):
    """Transparency-log payloads that hold no records (lookups, anything odd) add no pseudonym."""
    cfg = load_config(agent_home)
    store = Store(cfg.state_dir / "agent.db")
    try:
        store.log_sent("cloud.example", "protection", "lookup", payload)
    finally:
        store.close()
    assert [u["sent"] for u in pseudonyms_used(cfg)] == [False]


def test_export_file_replaces_atomically_and_stays_private(agent_home, tmp_path):
    """Exporting over an existing file replaces it; the result is 0600 whatever the old mode was."""
    cfg = load_config(agent_home)
    out = tmp_path / "export.json"
    out.write_text("old")
    out.chmod(0o644)
    export(cfg, out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert json.loads(out.read_text())["format"] == EXPORT_FORMAT
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert os.access(out, os.R_OK)
