"""The egress gate: decisions per legal basis, drops counted, withdrawal purges the outbox of that purpose only."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from governance_helpers import KEY, doc, purposes  # type: ignore[import-not-found, unused-ignore]

from agent.errors import ConfigError
from agent.governance import ConsentLedger, Decision, EgressGate
from agent.governance.gate import DROP_COUNTER
from agent.minimize.wire import SCHEMA_VERSION, Record, WireDetection
from agent.outbox import Store

pytest_plugins = ["governance_fixtures"]

NOTICE = "notice\n"
HANG_GUARD = 30.0


class Item:
    """Anything with a purpose, as the gate's filter takes it."""

    def __init__(self, purpose: str, n: int = 0) -> None:
        self.purpose, self.n = purpose, n


@pytest.fixture
def gate(ledger):
    return EgressGate(ledger.purposes, ledger)


def _record(n: int) -> Record:
    return Record(
        schema=SCHEMA_VERSION,
        record_id=f"{n:032x}",
        purpose="protection",
        pseudonym="c" * 32,
        time_bucket="2027-01-15T08:00Z",
        verdict="malicious",
        detections=[WireDetection(name="EICAR_Test_File", source="yara")],
        engine_version="test",
        rules_version="0" * 16,
    )


def _queue(db_path, purpose: str, count: int, start: int) -> None:
    """Put ``count`` rows of ``purpose`` in the real outbox table (other purposes have no Record type yet)."""
    db = sqlite3.connect(db_path, isolation_level=None)
    try:
        db.executemany(
            "INSERT INTO outbox (record_id, purpose, created, body) VALUES (?, ?, ?, ?)",
            [(f"{start + i:032x}", purpose, int(time.time()), b"{}") for i in range(count)],
        )
    finally:
        db.close()


def _outbox(db_path) -> dict[str, int]:
    db = sqlite3.connect(db_path)
    try:
        return dict(db.execute("SELECT purpose, count(*) FROM outbox GROUP BY purpose").fetchall())
    finally:
        db.close()


@pytest.mark.parametrize(
    ("purpose", "setup", "allowed"),
    [
        ("protection", None, True),
        ("threat_research", None, True),
        ("threat_research", lambda led: led.object_to("threat_research", "cli"), False),
        ("product_analytics", None, False),
        ("product_analytics", lambda led: led.grant("product_analytics", NOTICE, "cli"), True),
        ("marketing", None, False),
    ],
)
def test_decision_per_basis(gate, ledger, purpose, setup, allowed):
    """Contract always; legitimate interest unless objected to; consent only once given; undeclared never."""
    if setup:
        setup(ledger)
    decision = gate.allows(purpose)
    assert isinstance(decision, Decision)
    assert decision.allowed is allowed
    assert decision.reason


def test_payload_kind_must_be_declared_for_the_purpose(gate, ledger):
    """A named payload kind passes only for a purpose that declares it."""
    ledger.grant("product_analytics", NOTICE, "cli")
    assert gate.allows("protection", "verdicts").allowed
    assert gate.allows("protection", "reputation_search").allowed
    assert not gate.allows("product_analytics", "verdicts").allowed
    assert "not declared" in gate.allows("protection", "analytics").reason


def test_purpose_without_a_recipient_is_refused_even_on_contract(db_path, clock):
    """A declared purpose with no recipient cannot send, whatever its basis."""
    raw = doc()
    raw["purposes"]["protection"]["recipients"] = []
    with ConsentLedger(db_path, KEY, purposes(raw), clock) as led:
        decision = EgressGate(led.purposes, led).allows("protection")
    assert (decision.allowed, decision.reason) == (False, "no recipient declared")


def test_gate_and_ledger_must_share_the_purposes(ledger):
    """A gate over other purposes than its ledger's is a configuration error."""
    raw = doc()
    raw["policy_version"] = 9
    with pytest.raises(ConfigError, match="same purposes"):
        EgressGate(purposes(raw), ledger)


def test_filter_drops_and_counts_persistently(gate, ledger, db_path, clock):
    """filter() keeps allowed records in order and counts the drops per purpose in the store's counters."""
    items = [Item("protection", 1), Item("product_analytics", 2), Item("marketing", 3), Item("protection", 4)]
    kept = gate.filter(items)
    assert [i.n for i in kept] == [1, 4]
    gate.filter([Item("product_analytics")])
    assert gate.drops() == {"product_analytics": 2, "marketing": 1}
    with ConsentLedger(db_path, KEY, purposes(), clock) as again:
        assert EgressGate(again.purposes, again).drops() == {"product_analytics": 2, "marketing": 1}
    assert Store.counts(db_path)["outbox_depth"] == 0
    db = sqlite3.connect(db_path)
    try:
        assert db.execute(
            "SELECT value FROM counters WHERE name = ?", (DROP_COUNTER + "marketing",)
        ).fetchone() == (1,)
    finally:
        db.close()


def test_filter_takes_real_wire_records(gate):
    """Verdict records (purpose protection) pass the gate."""
    records = [_record(1), _record(2)]
    assert gate.filter(records) == records
    assert gate.drops() == {}


def test_withdraw_purges_queued_records_of_that_purpose_only(ledger, db_path):
    """Withdrawing consent deletes every queued record of that purpose at once, and nothing else."""
    store = Store(db_path)
    try:
        store.persist([], [_record(1), _record(2)])
    finally:
        store.close()
    ledger.grant("product_analytics", NOTICE, "cli")
    _queue(db_path, "product_analytics", 3, 100)
    _queue(db_path, "threat_research", 2, 200)
    result = ledger.withdraw("product_analytics", "cli")
    assert result.purged == 3
    assert result.unfinished_sends == 0
    assert _outbox(db_path) == {"protection": 2, "threat_research": 2}


def test_objection_purges_queued_records_of_that_purpose(ledger, db_path):
    """Objecting to threat_research deletes its queued records before returning."""
    _queue(db_path, "threat_research", 4, 0)
    _queue(db_path, "product_analytics", 1, 50)
    assert ledger.object_to("threat_research", "cli").purged == 4
    assert _outbox(db_path) == {"product_analytics": 1}


def test_failed_withdrawal_neither_records_nor_purges(ledger, db_path):
    """The ledger entry and the purge are one transaction: a refused entry purges nothing."""
    _queue(db_path, "product_analytics", 2, 0)
    with pytest.raises(ConfigError):
        ledger.withdraw("product_analytics", "carrier-pigeon")
    assert _outbox(db_path) == {"product_analytics": 2}
    assert ledger.entries() == []


def test_purge_disallowed_removes_what_was_queued_after_consent_ended(gate, ledger, db_path):
    """Records of a stopped purpose queued late (a race with withdrawal) are purged before delivery and counted."""
    ledger.grant("product_analytics", NOTICE, "cli")
    ledger.withdraw("product_analytics", "cli")
    _queue(db_path, "product_analytics", 2, 0)
    _queue(db_path, "threat_research", 1, 10)
    assert gate.purge_disallowed() == 2
    assert _outbox(db_path) == {"threat_research": 1}
    assert gate.drops() == {"product_analytics": 2}


def test_sending_refuses_a_stopped_purpose(gate, ledger):
    """sending() yields a refusal for a purpose that is off, and registers nothing."""
    with gate.sending("product_analytics") as decision:
        assert not decision.allowed
    ledger.grant("product_analytics", NOTICE, "cli")
    with gate.sending("product_analytics", "verdicts") as decision:
        assert not decision.allowed


def test_contract_sends_register_nothing(gate, db_path):
    """A contract purpose cannot be withdrawn, so its sends are allowed without an in-flight row."""
    with gate.sending("protection", "verdicts") as decision:
        assert decision.allowed
        db = sqlite3.connect(db_path)
        try:
            assert db.execute("SELECT count(*) FROM egress_inflight").fetchone() == (0,)
        finally:
            db.close()


def test_withdrawal_waits_for_a_send_in_flight(db_path, clock):
    """A withdrawal returns only after a send of that purpose that began before it has finished."""
    service = ConsentLedger(db_path, KEY, purposes(), clock)
    cli = ConsentLedger(db_path, KEY, purposes(), clock)
    done = threading.Event()
    result = []

    def withdraw():
        result.append(cli.object_to("threat_research", "cli"))
        done.set()

    gate = EgressGate(service.purposes, service)
    worker = threading.Thread(target=withdraw)
    try:
        with gate.sending("threat_research") as decision:
            assert decision.allowed
            worker.start()
            deadline = time.monotonic() + HANG_GUARD
            while not any(e.action == "object" for e in service.entries()):
                assert time.monotonic() < deadline, "the objection was never written"
                time.sleep(0.01)
            assert not done.is_set(), "the withdrawal returned while a send was in flight"
            with gate.sending("threat_research") as later:
                assert not later.allowed
        assert done.wait(HANG_GUARD)
        assert result[0].unfinished_sends == 0
    finally:
        worker.join(HANG_GUARD)
        service.close()
        cli.close()


def test_withdrawal_reports_a_send_that_did_not_finish(db_path, clock):
    """When a send in flight outlasts the wait, the withdrawal says so (the CLI then exits 2)."""
    with ConsentLedger(db_path, KEY, purposes(), clock) as service:
        impatient = ConsentLedger(db_path, KEY, purposes(), clock, send_wait=0.0)
        try:
            with EgressGate(service.purposes, service).sending("threat_research"):
                assert impatient.object_to("threat_research", "cli").unfinished_sends == 1
        finally:
            impatient.close()


def test_send_of_a_vanished_process_is_not_waited_for(ledger, db_path):
    """An in-flight row left by a process that died does not hold a withdrawal up."""
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True
    )
    dead = int(child.stdout)
    assert dead != os.getpid()
    db = sqlite3.connect(db_path, isolation_level=None)
    try:
        db.execute(
            "INSERT INTO egress_inflight (purpose, pid, started) VALUES ('threat_research', ?, ?)",
            (dead, int(time.time())),
        )
    finally:
        db.close()
    impatient = ConsentLedger(db_path, KEY, purposes(), send_wait=HANG_GUARD)
    try:
        assert impatient.object_to("threat_research", "cli").unfinished_sends == 0
    finally:
        impatient.close()


def test_gate_open_uses_the_install_state(agent_home):
    """EgressGate.open loads the bundled purposes and this install's ledger, and closes it."""
    from agent import config

    cfg = config.load()
    with EgressGate.open(cfg) as gate:
        assert gate.allows("protection").allowed
        assert not gate.allows("product_analytics").allowed
    assert (cfg.state_dir / "agent.db").exists()
