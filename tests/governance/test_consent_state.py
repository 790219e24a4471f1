"""state(purpose): consent, objection, contract; policy changes and the maximum consent age."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from governance_helpers import DAY, KEY, Clock, doc, purposes  # type: ignore[import-not-found, unused-ignore]
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.governance import ConsentLedger, Purposes

pytest_plugins = ["governance_fixtures"]

NOTICE = "notice\n"
MAX_AGE = purposes().get("product_analytics").max_consent_age_days


def _changed(version: int, **analytics) -> Purposes:
    raw = doc()
    raw["policy_version"] = version
    raw["purposes"]["product_analytics"].update(analytics)
    return purposes(raw)


def test_consent_purpose_is_off_by_default(ledger):
    """product_analytics is off until the user consents."""
    state = ledger.state("product_analytics")
    assert (state.allowed, state.reason) == (False, "no consent given")


def test_grant_then_withdraw(ledger, clock):
    """A grant turns a consent purpose on; a withdrawal turns it off again."""
    ledger.grant("product_analytics", NOTICE, "cli")
    assert ledger.state("product_analytics").allowed
    clock.now += 60
    ledger.withdraw("product_analytics", "cli")
    state = ledger.state("product_analytics")
    assert not state.allowed
    assert state.reason.startswith("consent withdrawn on ")


def test_legitimate_interest_until_objection_which_a_grant_lifts(ledger):
    """threat_research runs until objected to; a later grant lifts the objection."""
    assert ledger.state("threat_research").allowed
    ledger.object_to("threat_research", "cli")
    assert ledger.state("threat_research").reason.startswith("objection recorded on ")
    ledger.grant("threat_research", "", "cli")
    assert ledger.state("threat_research").allowed


def test_contract_is_always_allowed_by_the_ledger(ledger):
    """protection rests on the contract: the ledger never stops it."""
    assert ledger.state("protection").allowed


def test_undeclared_purpose_is_never_allowed(ledger):
    """A purpose the file does not declare is refused."""
    assert ledger.state("marketing").allowed is False


def test_changed_consent_purpose_stops_until_consent_again(db_path, clock):
    """A new policy version that changes the consent purpose stops it until the user consents again."""
    with ConsentLedger(db_path, KEY, purposes(), clock) as old:
        old.grant("product_analytics", NOTICE, "cli")
        assert old.state("product_analytics").allowed
    new_policy = _changed(2, notice="New words: we now also count update checks.\n")
    with ConsentLedger(db_path, KEY, new_policy, clock) as new:
        state = new.state("product_analytics")
        assert not state.allowed
        assert "policy version 1 -> 2" in state.reason
        assert new.verify().ok
        entry = new.grant("product_analytics", NOTICE, "cli")
        assert entry.policy_version == 2
        assert new.state("product_analytics").allowed


def test_version_bump_that_leaves_the_purpose_alone_keeps_consent(db_path, clock):
    """A policy version that changes only another purpose leaves consent in force."""
    with ConsentLedger(db_path, KEY, purposes(), clock) as old:
        old.grant("product_analytics", NOTICE, "cli")
    raw = doc()
    raw["policy_version"] = 2
    raw["purposes"]["protection"]["retention_days"] = 30
    with ConsentLedger(db_path, KEY, purposes(raw), clock) as new:
        assert new.state("product_analytics").allowed


def test_consent_expires_after_its_maximum_age(ledger, clock):
    """Consent older than max_consent_age_days stops the purpose; a fresh grant restarts the clock."""
    ledger.grant("product_analytics", NOTICE, "cli")
    clock.now += MAX_AGE * DAY
    assert ledger.state("product_analytics").allowed
    clock.now += 1
    state = ledger.state("product_analytics")
    assert not state.allowed
    assert f"older than {MAX_AGE} days" in state.reason
    ledger.grant("product_analytics", NOTICE, "cli")
    assert ledger.state("product_analytics").allowed


def test_shorter_maximum_age_applies_to_an_existing_grant(db_path, clock):
    """Lowering the maximum age is a change: the purpose stops until consent is given again."""
    with ConsentLedger(db_path, KEY, purposes(), clock) as old:
        old.grant("product_analytics", NOTICE, "cli")
    with ConsentLedger(db_path, KEY, _changed(2, max_consent_age_days=7), clock) as new:
        assert not new.state("product_analytics").allowed


def test_objection_does_not_touch_other_purposes(ledger):
    """Objecting to threat_research leaves consent to product_analytics as it was."""
    ledger.grant("product_analytics", NOTICE, "cli")
    ledger.object_to("threat_research", "cli")
    assert ledger.state("product_analytics").allowed
    assert not ledger.state("threat_research").allowed


# ------------------------------------------------------------------ property: any sequence vs a model

_POLICIES = (purposes(), _changed(2, notice="Second wording.\n"))
_STEPS = st.one_of(
    st.tuples(st.just("grant"), st.sampled_from(["product_analytics", "threat_research"])),
    st.tuples(st.just("withdraw"), st.just("product_analytics")),
    st.tuples(st.just("object"), st.just("threat_research")),
    st.tuples(st.just("age"), st.just("install")),
    st.tuples(st.just("wait"), st.sampled_from([1, DAY, 200 * DAY, MAX_AGE * DAY, MAX_AGE * DAY + 1])),
    st.tuples(st.just("policy"), st.integers(0, 1)),
)


class _Model:
    """What state() must say, kept the simplest way: the last stopping or granting action per purpose."""

    def __init__(self) -> None:
        self.last: dict[str, tuple[str, int, str]] = {}

    def record(self, purpose: str, action: str, when: int, digest: str) -> None:
        self.last[purpose] = (action, when, digest)

    def allowed(self, policy: Purposes, purpose: str, now: int) -> bool:
        declared = policy.get(purpose)
        last = self.last.get(purpose)
        if declared.basis == "contract":
            return True
        if declared.basis == "legitimate_interest":
            return last is None or last[0] == "grant"
        if last is None or last[0] != "grant" or last[2] != declared.digest:
            return False
        return now - last[1] <= declared.max_consent_age_days * DAY


def _apply(ledger: ConsentLedger, step: tuple[str, Any], model: _Model, clock: Clock) -> int:
    kind, arg = step
    policy = ledger.purposes
    if kind == "grant":
        model.record(str(arg), "grant", int(clock.now), policy.get(str(arg)).digest)
        ledger.grant(str(arg), NOTICE, "cli")
    elif kind == "withdraw":
        model.record("product_analytics", "withdraw", int(clock.now), "")
        ledger.withdraw("product_analytics", "cli")
    elif kind == "object":
        model.record("threat_research", "object", int(clock.now), "")
        ledger.object_to("threat_research", "cli")
    elif kind == "age":
        ledger.age_check_passed("installer")
    else:
        clock.now += int(arg) if kind == "wait" else 0
        return 0
    return 1


@settings(max_examples=100, deadline=None)
@given(steps=st.lists(_STEPS, max_size=14))
def test_any_sequence_verifies_and_matches_the_model(steps):
    """After any sequence of actions, waits and policy changes, verify() holds and state() matches the model."""
    clock, model, written = Clock(), _Model(), 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "agent.db"
        ledger = ConsentLedger(path, KEY, _POLICIES[0], clock)
        try:
            for step in steps:
                if step[0] == "policy":
                    ledger.close()
                    ledger = ConsentLedger(path, KEY, _POLICIES[int(step[1])], clock)
                    continue
                written += _apply(ledger, step, model, clock)
                for name in ledger.purposes.purposes:
                    expected = model.allowed(ledger.purposes, name, int(clock.now))
                    assert ledger.state(name).allowed is expected, (name, steps)
            check = ledger.verify()
            assert check.ok, check.problems
            assert check.entries == written == len(ledger.entries())
            assert [e.seq for e in ledger.entries()] == list(range(1, written + 1))
        finally:
            ledger.close()
