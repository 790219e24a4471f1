"""Analytics reports against the real reference cloud over TLS: consent-gated, anonymous, logged.

The install is enrolled (it holds a real token) so the tests can show the token is not used. The
requests are captured in front of the real transport through the client's transport seam.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import re
import sqlite3
import ssl
import time
from collections.abc import Iterator

import httpx
import pytest

from agent import config
from agent.governance import EgressGate, analytics_commands, render_notice
from agent.governance.analytics import KIND, PURPOSE, Analytics, sender_from_config
from agent.minimize import MasterSecret, period_label
from agent.model import Classification, DataClass, Detection, Outcome, ScanRequest, Verdict, VerdictKind
from agent.outbox import Store
from agent.upstream import client as upstream_client
from agent.upstream import enroll, read_token
from cloud.harness import CloudProcess, running_cloud

DAY = 86_400
# Consent is given at noon UTC four days ago: the cloud takes only days near its own today, and a day
# is reported only once it has been over for two hours.
T0 = (time.time() // DAY - 4) * DAY + DAY / 2


class Clock:
    """A clock the test moves: ``clock()`` returns ``clock.now``."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Capture(httpx.BaseTransport):
    """The real HTTPS transport, keeping a copy of every request."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.inner = httpx.HTTPTransport(verify=context)
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(scope="module")
def cloud(tmp_path_factory) -> Iterator[CloudProcess]:
    with running_cloud(tmp_path_factory.mktemp("cloud")) as running:
        yield running


@pytest.fixture
def capture(monkeypatch) -> list[Capture]:
    made: list[Capture] = []

    def factory(context: ssl.SSLContext) -> Capture:
        made.append(Capture(context))
        return made[-1]

    monkeypatch.setattr(upstream_client, "transport_factory", factory)
    return made


@pytest.fixture
def cfg(cloud, agent_home) -> config.Config:
    enroll(config.load(), cloud.url, cloud.product_key, ca_file=str(cloud.ca_file))
    return config.load()


def _day(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%d")


def _outcome() -> Outcome:
    verdict = Verdict(VerdictKind.MALICIOUS, (Detection("EICAR_Test_File", "yara"),))
    return Outcome(
        ScanRequest(path="x"), verdict, None, Classification("text", "txt", DataClass.NON_PERSONAL), None, 0.0
    )


def _count_on(analytics: Analytics, clock: Clock, *offsets: int) -> None:
    for offset in offsets:
        clock.now = T0 + offset * DAY
        analytics.count(_outcome())
        analytics.count_run()
    analytics.flush()


def _send(cfg: config.Config, clock: Clock) -> tuple[str, int]:
    store = Store(cfg.state_dir / "agent.db")
    try:
        with EgressGate.open(cfg, clock) as gate, Analytics.open(cfg.state_dir, clock=clock) as analytics:
            sender = sender_from_config(cfg, analytics, gate, store.log_sent)
            assert sender is not None
            try:
                result = sender.send_due()
            finally:
                sender.close()
        return result.outcome, result.sent
    finally:
        store.close()


def _offline(cfg: config.Config) -> config.Config:
    """The same install pointed at a closed port (the discard port on loopback)."""
    return dataclasses.replace(cfg, upstream=dataclasses.replace(cfg.upstream, url="https://127.0.0.1:9"))


def _grant(cfg: config.Config, clock: Clock) -> None:
    with EgressGate.open(cfg, clock) as gate:
        gate.ledger.grant(PURPOSE, render_notice(gate.purposes, gate.purposes.get(PURPOSE)))


def _stored(cloud: CloudProcess, report_ids: list[str]) -> list[tuple]:
    conn = sqlite3.connect(f"{cloud.db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT report_id, day, counter, bit FROM analytics_reports").fetchall()
    finally:
        conn.close()
    return [row for row in rows if row[0] in report_ids]


def _sent_log(cfg: config.Config) -> list[tuple]:
    store = Store(cfg.state_dir / "agent.db")
    try:
        return store.sent()
    finally:
        store.close()


def test_without_consent_nothing_is_made_or_sent(cfg, capture):
    """No consent: no report is perturbed, no ε spent, no request made, nothing in the transparency log."""
    clock = Clock()
    with Analytics.open(cfg.state_dir, clock=clock) as analytics:
        _count_on(analytics, clock, 1, 2)
    clock.now = T0 + 3 * DAY
    assert _send(cfg, clock) == ("not_allowed", 0)
    with Analytics.open(cfg.state_dir, clock=clock) as analytics:
        assert [d.reports for d in analytics.days()] == [0, 0]
        assert analytics.pending(100) == []
    assert [r for c in capture for r in c.requests] == []
    assert _sent_log(cfg) == []


def test_with_consent_reports_leave_without_token_or_pseudonym_and_are_logged(cfg, cloud, capture):
    """Each closed day after the grant gives one report: no Authorization, no pseudonym, fresh ids, logged."""
    clock = Clock()
    _grant(cfg, clock)
    with Analytics.open(cfg.state_dir, clock=clock) as analytics:
        _count_on(analytics, clock, 0, 1, 2)
    clock.now = T0 + 3 * DAY
    assert _send(cfg, clock) == ("sent", 2)

    (request,) = [r for c in capture for r in c.requests]
    assert request.url.path == "/v1/analytics"
    assert "authorization" not in request.headers
    assert "cookie" not in request.headers
    body = request.content
    reports = json.loads(body)
    assert [r["day"] for r in reports] == [_day(T0 + DAY), _day(T0 + 2 * DAY)]  # not the day of the grant
    assert all(set(r) == {"schema", "report_id", "day", "counter", "bit"} for r in reports)
    assert len({r["report_id"] for r in reports}) == 2
    assert set(re.findall(rb"[0-9a-f]{32}", body)) == {r["report_id"].encode() for r in reports}
    token = read_token(cfg)
    secret = MasterSecret.load_or_create(cfg.state_dir)
    now = dt.datetime.fromtimestamp(clock.now, dt.UTC)
    pseudonyms = {secret.pseudonym("verdicts", period_label(now, p)) for p in ("month", "week", "day")}
    for value in (token, *pseudonyms):
        assert value.encode() not in body
        assert value not in str(request.headers)

    ((_, recipient, purpose, kind, payload),) = _sent_log(cfg)
    assert (purpose, kind, payload) == (PURPOSE, KIND, body)
    assert recipient.startswith("analytics (")
    stored = _stored(cloud, [r["report_id"] for r in reports])
    assert sorted(stored) == sorted((r["report_id"], r["day"], r["counter"], r["bit"]) for r in reports)


def test_the_budget_holds_after_a_send_and_a_restart(cfg, capture):
    """A second send the same day, from a fresh process state, sends nothing more."""
    clock = Clock()
    _grant(cfg, clock)
    with Analytics.open(cfg.state_dir, clock=clock) as analytics:
        _count_on(analytics, clock, 1)
    clock.now = T0 + 2 * DAY
    assert _send(cfg, clock) == ("sent", 1)
    assert _send(cfg, clock) == ("nothing_due", 0)
    clock.now = T0 + 3 * DAY
    assert _send(cfg, clock) == ("nothing_due", 0)
    assert len([r for c in capture for r in c.requests]) == 1
    with Analytics.open(cfg.state_dir, clock=clock) as analytics:
        assert analytics.epsilon_spent(_day(T0 + DAY)) == 1.0


def test_an_unreachable_cloud_keeps_the_report_unchanged_for_the_next_try(cfg, cloud, capture, tmp_path):
    """A failed send keeps the exact report (no new perturbation, no new ε); the retry sends that same body."""
    clock = Clock()
    _grant(cfg, clock)
    with Analytics.open(cfg.state_dir, clock=clock) as analytics:
        _count_on(analytics, clock, 1)
    clock.now = T0 + 2 * DAY
    offline = _offline(cfg)
    assert _send(offline, clock)[0] == "deferred"
    first = capture[-1].requests[-1].content
    assert _send(cfg, clock) == ("sent", 1)
    assert capture[-1].requests[-1].content == first
    with Analytics.open(cfg.state_dir, clock=clock) as analytics:
        assert analytics.epsilon_spent(_day(T0 + DAY)) == 1.0
    assert [entry[4] for entry in _sent_log(cfg)] == [first]


def test_withdrawal_after_a_failed_send_leaves_nothing_to_send(cfg, capture):
    """A report kept after a failure is deleted by `withdraw`; the next run sends nothing."""
    clock = Clock()
    _grant(cfg, clock)
    with Analytics.open(cfg.state_dir, clock=clock) as analytics:
        _count_on(analytics, clock, 1)
    clock.now = T0 + 2 * DAY
    offline = _offline(cfg)
    assert _send(offline, clock)[0] == "deferred"
    with EgressGate.open(cfg, clock) as gate:
        gate.ledger.withdraw(PURPOSE)
    with Analytics.open(cfg.state_dir, clock=clock) as analytics:
        assert analytics.pending(10) == []
    assert _send(cfg, clock) == ("not_allowed", 0)
    assert _sent_log(cfg) == []


def test_a_report_the_cloud_refuses_is_dropped_not_resent(cfg, capture):
    """Reports of a day older than the cloud keeps are refused (422) once and never sent again."""
    clock = Clock()
    clock.now = T0 - 400 * DAY
    _grant(cfg, clock)
    with Analytics.open(cfg.state_dir, clock=clock) as analytics:
        _count_on(analytics, clock, -399)
    clock.now = T0 - 398 * DAY
    assert _send(cfg, clock)[0] == "refused"
    assert _send(cfg, clock) == ("nothing_due", 0)
    assert len([r for c in capture for r in c.requests]) == 1
    assert _sent_log(cfg) == []


def test_send_now_sends_the_due_reports(cfg, capture, capsys):
    """`analytics send-now` makes and sends the due report and says so; a second run finds nothing due."""
    clock = Clock()
    _grant(cfg, clock)
    with Analytics.open(cfg.state_dir, clock=clock) as analytics:
        _count_on(analytics, clock, 1)
    clock.now = T0 + 2 * DAY
    parser = argparse.ArgumentParser()
    analytics_commands.add_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["analytics", "send-now"])
    assert analytics_commands.run(args, cfg, clock) == analytics_commands.EXIT_OK
    assert (
        "analytics: 1 report(s) sent\n" in capsys.readouterr().out
    )  # (unconfigured structlog prints here too)
    assert analytics_commands.run(args, cfg, clock) == analytics_commands.EXIT_OK
    assert "analytics: no report is due\n" in capsys.readouterr().out
    assert len(_sent_log(cfg)) == 1
