"""Scan history: rows round-trip, locations are sealed (no plaintext path in the file), shredding works."""

from __future__ import annotations

import os
import types

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rights_helpers import forms, outcome, raw_store_bytes  # type: ignore[import-not-found, unused-ignore]

from agent.governance.history import History, HistoryRow, record_outcomes, worth_keeping
from agent.governance.retention import Retention
from agent.governance.vault import KEY_FILE, DataKey, shred_file
from agent.model import VerdictKind

CANARY = "/home/zq7canary/Private/k3y-zq7canary-file.exe"
MEMBER = "inner/zq7canary-member.vbs"


@pytest.fixture
def state(tmp_path):
    return tmp_path / "state"


@pytest.fixture
def history(state):
    with History(state / "agent.db", DataKey.load_or_create(state)) as h:
        yield h


def _row(path=CANARY, when=1_800_000_000, **over) -> HistoryRow:
    fields = {
        "time": when,
        "verdict": "malicious",
        "detections": ("EICAR_Test_File",),
        "kind": "executable",
        "path": path,
        "members": (MEMBER,),
        "source": "on_demand",
        "reason": "",
    }
    return HistoryRow(**(fields | over))


def test_recorded_rows_read_back_decrypted(history):
    """record() then entries() returns the same time, verdict, detections, kind, path and members."""
    assert history.record([_row(), _row(path="/tmp/other", when=1_800_000_100, members=())]) == 2
    first, second = history.entries()
    assert (first.time, first.verdict, first.detections, first.kind) == (
        1_800_000_000,
        "malicious",
        ("EICAR_Test_File",),
        "executable",
    )
    assert (first.path, first.members, first.source) == (CANARY, (MEMBER,), "on_demand")
    assert (second.path, second.members) == ("/tmp/other", ())
    assert history.count() == 2


def test_the_store_holds_no_plaintext_path_or_member_name(history, state):
    """The raw bytes of agent.db and its WAL hold the canary path and member in no plain, hex or base64 form."""
    history.record([_row()])
    raw = raw_store_bytes(state)
    assert raw
    for needle in (CANARY, MEMBER, "zq7canary"):
        for form in forms(needle):
            assert form not in raw, (needle, form)


def test_rows_are_unreadable_after_the_data_key_is_shredded(state):
    """Crypto-shredding: after data.key is shredded, stored rows keep their verdict but lose their path."""
    with History(state / "agent.db", DataKey.load_or_create(state)) as history:
        history.record([_row()])
    shred_file(state / KEY_FILE)
    with History(state / "agent.db", DataKey.load_or_create(state)) as history:
        (entry,) = history.entries()
    assert entry.path is None
    assert entry.members == ()
    assert "another data key" in entry.unreadable
    assert entry.verdict == "malicious"
    assert "unreadable" in entry.as_dict()


def test_a_sealed_location_moved_to_another_row_does_not_open(history, state):
    """Swapping the sealed column between two rows makes both unreadable (bound to the row's uid)."""
    history.record([_row(path="/a"), _row(path="/b", when=1_800_000_001)])
    db = history._db
    (a, la), (b, lb) = db.execute("SELECT id, location FROM scan_history ORDER BY id").fetchall()
    db.execute("UPDATE scan_history SET location = ? WHERE id = ?", (lb, a))
    db.execute("UPDATE scan_history SET location = ? WHERE id = ?", (la, b))
    assert [e.path for e in history.entries()] == [None, None]


def test_purge_deletes_only_older_rows(history):
    """purge(before) deletes rows with time < before and keeps the rest."""
    history.record([_row(when=100), _row(when=200), _row(when=300)])
    assert history.purge(200) == 1
    assert [e.time for e in history.entries()] == [200, 300]


def test_limit_returns_the_newest_rows_oldest_first(history):
    """entries(limit=n) returns the n newest rows, in time order."""
    history.record([_row(when=t) for t in (5, 1, 4, 2, 3)])
    assert [e.time for e in history.entries(limit=2)] == [4, 5]


def test_a_disabled_history_records_nothing(state):
    """With history disabled (history_days = 0), record() stores nothing."""
    with History(state / "agent.db", DataKey.load_or_create(state), enabled=False) as history:
        assert history.record([_row()]) == 0
        assert history.count() == 0


def test_retention_zero_history_days_disables_recording():
    """Retention.from_config reads [retention] when config has it; history_days = 0 disables history."""
    section = types.SimpleNamespace(history_days=0, cache_days=7)
    ttl = Retention.from_config(types.SimpleNamespace(retention=section))  # type: ignore[arg-type]
    assert (ttl.history_days, ttl.cache_days, ttl.sent_log_days) == (0, 7, 365)


def test_rows_from_session_outcomes(history):
    """record_outcomes keeps everything but clean, with detection names, member names and source."""
    found = outcome(CANARY, member=MEMBER)
    clean = outcome("/tmp/clean", VerdictKind.CLEAN)
    assert worth_keeping(found)
    assert not worth_keeping(clean)
    assert record_outcomes(history, [found, clean], clock=lambda: 1_800_000_000.5) == 1
    (entry,) = history.entries()
    assert (entry.time, entry.path, entry.members, entry.detections, entry.kind) == (
        1_800_000_000,
        CANARY,
        (MEMBER,),
        ("EICAR_Test_File",),
        "executable",
    )


def test_wipe_deletes_every_row(history):
    """wipe() deletes every row and reports how many."""
    history.record([_row(), _row()])
    assert history.wipe() == 2
    assert history.entries() == []


_ANY_TEXT = st.text(alphabet=st.characters(), max_size=80)  # surrogates included
_FS_NAMES = st.binary(min_size=1, max_size=60).map(os.fsdecode)  # undecodable bytes -> surrogate escapes


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.one_of(_ANY_TEXT, _FS_NAMES),
    members=st.lists(st.one_of(_ANY_TEXT, _FS_NAMES), max_size=3),
    reason=_ANY_TEXT,
)
def test_any_path_string_round_trips(history, path, members, reason):
    """Property: any str (lone surrogates, surrogate escapes, control characters) comes back unchanged."""
    history.wipe()
    history.record([_row(path=path, members=tuple(members), reason=reason)])
    (entry,) = history.entries()
    assert (entry.path, entry.members, entry.reason) == (path, tuple(members), reason)
