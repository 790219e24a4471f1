"""Analytics on the device: counters persist, the ε budget persists and holds, due days, withdrawal purges."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from governance_helpers import DAY, KEY, T0, purposes  # type: ignore[import-not-found, unused-ignore]

from agent.governance import ConsentLedger, EgressGate
from agent.governance.analytics import PURPOSE, WINDOW_DAYS, Analytics, BudgetExhausted
from agent.minimize.analytics import EPSILON
from agent.model import Classification, DataClass, Detection, Outcome, ScanRequest, Verdict, VerdictKind

pytest_plugins = ["governance_fixtures"]

NOTICE = "notice\n"


def _outcome(kind: str = "document", *detections: str, path: str = "/home/zqxalice/tax-2026.pdf") -> Outcome:
    verdict = Verdict(
        VerdictKind.MALICIOUS if detections else VerdictKind.CLEAN,
        tuple(Detection(d, "yara") for d in detections),
    )
    classification = Classification(kind, "pdf", DataClass.PERSONAL, {"email": 2})
    return Outcome(ScanRequest(path=path, display=path), verdict, None, classification, None, 0.0)


def _day(offset_days: float) -> str:
    return dt.datetime.fromtimestamp(T0 + offset_days * DAY, dt.UTC).strftime("%Y-%m-%d")


def test_counts_survive_a_restart_and_hold_no_path_or_name(db_path, clock):
    """Counted outcomes are kept per day across a restart; agent.db holds none of their paths."""
    with Analytics(db_path, clock) as analytics:
        analytics.count(_outcome())
        analytics.count_batch(
            [_outcome("executable", "EICAR_Test_File"), _outcome("executable", "Win.Trojan.X-1")]
        )
        analytics.count_run()
    with Analytics(db_path, clock) as analytics:
        assert analytics.counters(_day(0)) == {
            "objects.document": 1,
            "objects.executable": 2,
            "detections.EICAR": 1,
            "detections.Win": 1,
            "scans_run": 1,
        }
    for file in db_path.parent.iterdir():
        assert b"zqxalice" not in file.read_bytes()


def test_counting_from_many_threads_loses_nothing(db_path, clock):
    """Four threads counting 2,500 outcomes each give exactly 10,000."""
    with Analytics(db_path, clock) as analytics:

        def count_many() -> None:
            for _ in range(2500):
                analytics.count(_outcome())

        threads = [threading.Thread(target=count_many) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        analytics.flush()
        assert analytics.counters(_day(0)) == {"objects.document": 10_000}


def test_the_budget_persists_across_restarts_and_blocks_an_extra_report(db_path, clock):
    """One report spends ε; after a restart the same day's second report is refused and nothing is added."""
    with Analytics(db_path, clock) as analytics:
        analytics.count(_outcome())
        analytics.prepare(_day(0))
        assert analytics.epsilon_spent(_day(0)) == EPSILON
    with Analytics(db_path, clock) as analytics:
        with pytest.raises(BudgetExhausted, match="budget"):
            analytics.prepare(_day(0))
        assert analytics.epsilon_spent(_day(0)) == EPSILON
        assert len(analytics.pending(100)) == 1
        analytics.prepare(_day(1))  # another day has its own budget
        assert len(analytics.pending(100)) == 2


def test_a_larger_budget_allows_exactly_as_many_reports_as_it_holds(db_path, clock):
    """With a daily budget of 2.5 ε, two reports of a day are made and the third is refused."""
    with Analytics(db_path, clock, daily_budget=2.5 * EPSILON) as analytics:
        analytics.prepare(_day(0))
        analytics.prepare(_day(0))
        with pytest.raises(BudgetExhausted):
            analytics.prepare(_day(0))
        assert analytics.epsilon_spent(_day(0)) == 2 * EPSILON
        assert [d.reports for d in analytics.days()] == [2]


def test_due_days_are_closed_days_after_the_consent_day_within_the_window(db_path, clock):
    """Only whole days after the grant, before today, within the window and not yet reported are due."""
    with Analytics(db_path, clock) as analytics:
        for offset in (-1, 0, 1, 2, 3):
            clock.now = T0 + offset * DAY
            analytics.count(_outcome())
        clock.now = T0 + 3 * DAY
        assert analytics.due_days(None) == []
        assert analytics.due_days(int(T0)) == [_day(1), _day(2)]
        analytics.prepare(_day(1))
        assert analytics.due_days(int(T0)) == [_day(2)]
        clock.now = T0 + (WINDOW_DAYS + 4) * DAY  # every counted day is now past the window
        assert analytics.due_days(int(T0)) == []
        assert analytics.purge_expired() > 0
        assert analytics.days() == []


def test_withdrawing_consent_deletes_stored_reports_in_its_own_transaction(db_path, clock):
    """A report made under consent is gone the moment `withdraw` returns, before any sender runs."""
    with ConsentLedger(db_path, KEY, purposes(), clock) as ledger, Analytics(db_path, clock) as analytics:
        ledger.grant(PURPOSE, NOTICE)
        analytics.ensure_trigger()
        analytics.count(_outcome())
        analytics.prepare(_day(0))
        assert len(analytics.pending(10)) == 1
        ledger.withdraw(PURPOSE)
        assert analytics.pending(10) == []
        assert not EgressGate(ledger.purposes, ledger).allows(PURPOSE).allowed
        assert analytics.epsilon_spent(_day(0)) == EPSILON  # the ε stays spent: the report was made


def test_other_withdrawals_leave_stored_reports_alone(db_path, clock):
    """Objecting to threat research does not touch analytics reports."""
    with ConsentLedger(db_path, KEY, purposes(), clock) as ledger, Analytics(db_path, clock) as analytics:
        ledger.grant(PURPOSE, NOTICE)
        analytics.ensure_trigger()
        analytics.prepare(_day(0))
        ledger.object_to("threat_research")
        assert len(analytics.pending(10)) == 1


def test_a_day_becomes_due_two_hours_after_it_ended(db_path, clock):
    """Counts still buffered at midnight reach their day before it is reported: it waits two hours."""
    with Analytics(db_path, clock) as analytics:
        clock.now = T0 + DAY
        analytics.count(_outcome())
        midnight = (T0 + 2 * DAY) // DAY * DAY
        clock.now = midnight + 3_600
        assert analytics.due_days(int(T0)) == []
        clock.now = midnight + 2 * 3_600 + 1
        assert analytics.due_days(int(T0)) == [_day(1)]
