"""The consent ledger: append-only, hash-chained, HMAC-sealed; verify() catches tampering of the file."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat

import pytest
from governance_helpers import DAY, KEY, purposes, raw_db  # type: ignore[import-not-found, unused-ignore]

from agent.errors import ConfigError
from agent.governance import ConsentLedger
from agent.governance.consent import INSTALL
from agent.minimize import MasterSecret

pytest_plugins = ["governance_fixtures"]

NOTICE = "the exact notice text shown\n"


def _fill(ledger, clock):
    """Five entries of every kind, a day apart."""
    ledger.age_check_passed("installer")
    for step in (
        lambda: ledger.grant("product_analytics", NOTICE, "installer"),
        lambda: ledger.object_to("threat_research", "cli"),
        lambda: ledger.withdraw("product_analytics", "cli"),
        lambda: ledger.grant("threat_research", "", "cli"),
    ):
        clock.now += DAY
        step()


def test_entries_hold_what_the_user_was_shown(ledger, clock):
    """A grant records purpose, action, policy version, purpose digest, notice SHA-256, channel and time."""
    entry = ledger.grant("product_analytics", NOTICE, "installer")
    assert (entry.seq, entry.purpose, entry.action, entry.channel) == (
        1,
        "product_analytics",
        "grant",
        "installer",
    )
    assert entry.policy_version == 1
    assert entry.notice_sha256 == hashlib.sha256(NOTICE.encode()).hexdigest()
    assert entry.purpose_digest == purposes().get("product_analytics").digest
    assert entry.time == int(clock.now)
    assert ledger.entries() == [entry]


def test_age_check_keeps_only_passed_version_and_date(ledger):
    """An age check records that it passed, the policy version and the time: no date of birth."""
    entry = ledger.age_check_passed("installer")
    assert (entry.purpose, entry.action, entry.policy_version) == (INSTALL, "age_check_passed", 1)
    assert set(entry.as_dict()) == {
        "seq", "purpose", "action", "policy_version", "purpose_digest", "notice_sha256", "channel", "time", "hash", "seal",
    }  # fmt: skip


def test_untouched_ledger_verifies(ledger, clock):
    """A ledger written only through the API verifies, entry count included."""
    _fill(ledger, clock)
    check = ledger.verify()
    assert check.ok, check.problems
    assert check.entries == 5


def test_empty_ledger_verifies(ledger):
    """A new install's empty ledger verifies."""
    assert ledger.verify().ok


def test_the_store_file_is_private(ledger, db_path):
    """The ledger lives in agent.db, created 0600."""
    assert stat.S_IMODE(os.stat(db_path).st_mode) == 0o600


def test_sqlite_refuses_updates_and_deletes_through_the_api_connection(ledger, clock, db_path):
    """Triggers make the table append-only for ordinary SQL (a safety net, not the protection)."""
    _fill(ledger, clock)
    db = sqlite3.connect(db_path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE consent_ledger SET action = 'grant' WHERE seq = 4")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("DELETE FROM consent_ledger WHERE seq = 4")
    finally:
        db.close()


def _tamper(db_path, *statements):
    db = raw_db(db_path)
    try:
        for sql, params in statements:
            db.execute(sql, params)
    finally:
        db.close()


def _row(db_path, seq):
    db = sqlite3.connect(db_path)
    try:
        return db.execute(
            "SELECT purpose, action, policy_version, purpose_digest, notice_sha256, channel, time, hash, seal"
            " FROM consent_ledger WHERE seq = ?",
            (seq,),
        ).fetchone()
    finally:
        db.close()


_SET_ROW = (
    "UPDATE consent_ledger SET purpose=?, action=?, policy_version=?, purpose_digest=?, notice_sha256=?,"
    " channel=?, time=?, hash=?, seal=? WHERE seq=?"
)


@pytest.mark.parametrize(
    ("name", "statements"),
    [
        ("edit the action", lambda p: [("UPDATE consent_ledger SET action = 'grant' WHERE seq = 4", ())]),
        ("edit the time", lambda p: [("UPDATE consent_ledger SET time = time + 1 WHERE seq = 2", ())]),
        ("edit the channel", lambda p: [("UPDATE consent_ledger SET channel = 'cli' WHERE seq = 1", ())]),
        (
            "edit the notice hash",
            lambda p: [("UPDATE consent_ledger SET notice_sha256 = ? WHERE seq = 2", ("0" * 64,))],
        ),
        ("reorder two rows", lambda p: [(_SET_ROW, (*_row(p, 3), 4)), (_SET_ROW, (*_row(p, 4), 3))]),
        ("renumber a row", lambda p: [("UPDATE consent_ledger SET seq = 9 WHERE seq = 3", ())]),
        ("delete in the middle", lambda p: [("DELETE FROM consent_ledger WHERE seq = 3", ())]),
        ("delete the first", lambda p: [("DELETE FROM consent_ledger WHERE seq = 1", ())]),
        ("truncate the end", lambda p: [("DELETE FROM consent_ledger WHERE seq >= 4", ())]),
        ("delete the head", lambda p: [("DELETE FROM consent_head", ())]),
        ("edit the head count", lambda p: [("UPDATE consent_head SET count = 4", ())]),
        (
            "truncate and point the head at the new end",
            lambda p: [
                ("DELETE FROM consent_ledger WHERE seq = 5", ()),
                ("UPDATE consent_head SET count = 4, hash = ?", (_row(p, 4)[7],)),
            ],
        ),
    ],
)
def test_verify_catches_tampering(ledger, clock, db_path, name, statements):
    """Editing, reordering, deleting or truncating rows in the SQLite file fails verification."""
    _fill(ledger, clock)
    _tamper(db_path, *statements(db_path))
    check = ledger.verify()
    assert not check.ok, name
    assert check.problems


def _chain(prev, seq, *fields):
    body = json.dumps([seq, *fields], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev}\n{body}".encode()).hexdigest()


def test_verify_catches_a_row_forged_without_the_key(ledger, clock, db_path):
    """A grant appended with a correct hash chain and head, but no key, fails on its seals."""
    _fill(ledger, clock)
    last = ledger.entries()[-1]
    digest = purposes().get("product_analytics").digest
    fields = ("product_analytics", "grant", 1, digest, "0" * 64, "cli", last.time + 1)
    forged = _chain(last.hash, 6, *fields)
    _tamper(
        db_path,
        ("INSERT INTO consent_ledger VALUES (6, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (*fields, forged, "f" * 64)),
        ("UPDATE consent_head SET count = 6, hash = ?, seal = ?", (forged, "e" * 64)),
    )
    check = ledger.verify()
    assert not check.ok
    assert any("entry 6: seal" in p for p in check.problems)
    assert any("head record seal" in p for p in check.problems)
    assert ledger.state("product_analytics").allowed is False


def test_another_key_does_not_verify(ledger, clock, db_path):
    """The same file under another install's key fails: the seals are keyed."""
    _fill(ledger, clock)
    with ConsentLedger(db_path, bytes(32), purposes(), clock) as other:
        assert not other.verify().ok


def test_tampered_ledger_stops_consent_and_interest_but_not_contract(ledger, clock, db_path):
    """A ledger that does not verify fails closed for consent and legitimate interest; contract goes on."""
    ledger.grant("product_analytics", NOTICE, "cli")
    ledger.age_check_passed("installer")
    assert ledger.state("product_analytics").allowed
    _tamper(db_path, ("UPDATE consent_ledger SET channel = 'cli' WHERE seq = 2", ()))
    assert ledger.state("product_analytics").allowed is False
    assert ledger.state("threat_research").reason == "the consent ledger does not verify"
    assert ledger.state("protection").allowed is True


def test_open_derives_the_key_from_the_master_secret(tmp_path):
    """ConsentLedger.open seals under HKDF(master secret, 'consent-ledger') in state_dir/agent.db."""
    state = tmp_path / "state"
    with ConsentLedger.open(state, purposes()) as led:
        led.grant("product_analytics", NOTICE, "cli")
    key = MasterSecret.load_or_create(state).key("consent-ledger")
    with ConsentLedger(state / "agent.db", key, purposes()) as led:
        assert led.verify().ok
    with ConsentLedger(state / "agent.db", MasterSecret.load_or_create(state).key("logs"), purposes()) as led:
        assert not led.verify().ok


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda led: led.grant("protection", NOTICE, "cli"), "rests on the contract"),
        (lambda led: led.withdraw("protection", "cli"), "stops only with the contract"),
        (lambda led: led.withdraw("threat_research", "cli"), "use `consent object threat_research`"),
        (lambda led: led.object_to("product_analytics", "cli"), "use `consent withdraw product_analytics`"),
        (lambda led: led.grant("product_analytics", "  ", "cli"), "needs the notice text"),
        (lambda led: led.grant("marketing", NOTICE, "cli"), "undeclared purpose"),
        (lambda led: led.grant("product_analytics", NOTICE, "email"), "unknown consent channel"),
    ],
)
def test_actions_that_do_not_fit_the_basis_are_refused(ledger, call, message):
    """Consent is not given for contract, withdrawn from LI, or objected to for consent; nothing is written."""
    with pytest.raises(ConfigError, match=message):
        call(ledger)
    assert ledger.entries() == []
    assert ledger.verify().ok


def test_erase_drops_the_ledger_and_a_new_one_starts_empty(ledger, clock, db_path):
    """erase() (for forget) removes every entry and the head; the next ledger is empty and verifies."""
    _fill(ledger, clock)
    ledger.erase()
    ledger.close()
    with ConsentLedger(db_path, KEY, purposes(), clock) as fresh:
        assert fresh.entries() == []
        assert fresh.verify().ok
        assert fresh.state("product_analytics").reason == "no consent given"
