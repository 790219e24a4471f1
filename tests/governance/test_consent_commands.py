"""``endpoint-agent consent show | grant | withdraw | object | verify`` against a real agent home."""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import time

import pytest
from conftest import run_cli
from governance_helpers import DAY, Clock, raw_db  # type: ignore[import-not-found, unused-ignore]

from agent import config
from agent.governance import commands
from agent.governance.purposes import load_purposes, render_notice


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="endpoint-agent")
    commands.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(*argv: str, clock=time.time) -> int:
    return commands.run(_parser().parse_args(["consent", *argv]), config.load(), clock)


def _ledger_rows(home):
    db = sqlite3.connect(home / "agent.db")
    try:
        return db.execute(
            "SELECT purpose, action, channel, notice_sha256 FROM consent_ledger ORDER BY seq"
        ).fetchall()
    finally:
        db.close()


def test_show_lists_purposes_bases_recipients_countries_and_how_to_stop(agent_home, capsys):
    """show prints each purpose with basis, state, recipients with country, and the command that stops it."""
    assert _run("show") == 0
    out = capsys.readouterr().out
    for needle in (
        "protection: ON",
        "threat_research: ON",
        "product_analytics: OFF",
        "contract (GDPR Art. 6(1)(b))",
        "legitimate interest (GDPR Art. 6(1)(f))",
        "consent (GDPR Art. 6(1)(a))",
        "security cloud (processor: hosting and operation of the security cloud) in DE",
        "endpoint-agent consent withdraw product_analytics",
        "endpoint-agent consent object threat_research",
        "to allow:   endpoint-agent consent grant product_analytics",
        "Consent ledger: 0 entries, verified",
    ):
        assert needle in out


def test_show_json(agent_home, capsys):
    """show --json is one document with every purpose, its recipients and the ledger."""
    assert _run("show", "--json") == 0
    document = json.loads(capsys.readouterr().out)
    by_name = {p["name"]: p for p in document["purposes"]}
    assert set(by_name) == {"protection", "threat_research", "product_analytics"}
    assert by_name["product_analytics"]["allowed"] is False
    assert by_name["product_analytics"]["how_to_stop"] == "endpoint-agent consent withdraw product_analytics"
    assert by_name["protection"]["recipients"][0]["country"] == "DE"
    assert document["ledger"] == {"verified": True, "entries": []}
    assert document["policy_version"] == 1


def test_show_one_purpose_prints_its_notice(agent_home, capsys):
    """show PURPOSE prints the full notice that a grant would record."""
    assert _run("show", "product_analytics") == 0
    out = capsys.readouterr().out
    purposes = load_purposes(config.load())
    assert out.startswith(render_notice(purposes, purposes.get("product_analytics")))
    assert "State: no consent given" in out


def test_grant_shows_the_notice_and_records_its_hash(agent_home, capsys):
    """grant prints the notice and records the SHA-256 of exactly the text printed."""
    assert _run("grant", "product_analytics", "--yes") == 0
    out = capsys.readouterr().out
    purposes = load_purposes(config.load())
    notice = render_notice(purposes, purposes.get("product_analytics"))
    assert out.startswith(notice)
    assert "Consent recorded for product_analytics" in out
    assert _ledger_rows(agent_home) == [
        ("product_analytics", "grant", "cli", hashlib.sha256(notice.encode()).hexdigest())
    ]
    assert _run("show", "--json") == 0
    states = {p["name"]: p["allowed"] for p in json.loads(capsys.readouterr().out)["purposes"]}
    assert states["product_analytics"] is True


def test_grant_off_a_terminal_needs_yes(agent_home, capsys):
    """Without a terminal to answer on, grant records nothing unless --yes is given."""
    assert _run("grant", "product_analytics") == 2
    assert "add --yes" in capsys.readouterr().err
    assert _ledger_rows(agent_home) == []


def test_withdraw_is_one_command(agent_home, capsys):
    """withdraw needs no confirmation, purges the queue and turns the purpose off."""
    assert _run("grant", "product_analytics", "--yes") == 0
    capsys.readouterr()
    assert _run("withdraw", "product_analytics") == 0
    out = capsys.readouterr().out
    assert "Consent withdrawn for product_analytics" in out
    assert "0 queued records deleted" in out
    assert [r[1] for r in _ledger_rows(agent_home)] == ["grant", "withdraw"]


def test_object_and_lift(agent_home, capsys):
    """object stops threat_research; grant lifts the objection."""
    assert _run("object", "threat_research") == 0
    assert _run("show", "--json") == 0
    capsys.readouterr()
    assert _run("grant", "threat_research", "--yes") == 0
    assert "Objection lifted for threat_research" in capsys.readouterr().out
    assert [r[1] for r in _ledger_rows(agent_home)] == ["object", "grant"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("grant", "protection", "--yes"), "rests on the contract"),
        (("withdraw", "threat_research"), "consent object threat_research"),
        (("object", "product_analytics"), "consent withdraw product_analytics"),
        (("withdraw", "marketing"), "undeclared purpose 'marketing'"),
    ],
)
def test_wrong_action_for_the_basis_exits_2(agent_home, capsys, argv, message):
    """An action that does not fit the purpose's basis is an error (exit 2) that says what to do."""
    assert _run(*argv) == 2
    assert message in capsys.readouterr().err
    assert _ledger_rows(agent_home) == []


def test_verify_ok_then_tampered(agent_home, capsys):
    """verify exits 0 on an intact ledger and 1 once a row was edited in the file."""
    _run("grant", "product_analytics", "--yes")
    _run("withdraw", "product_analytics")
    assert _run("verify") == 0
    assert "2 entries; chain, seals and head verified" in capsys.readouterr().out
    db = raw_db(agent_home / "agent.db")
    try:
        db.execute("UPDATE consent_ledger SET action = 'grant' WHERE seq = 2")
    finally:
        db.close()
    assert _run("verify") == 1
    assert "DOES NOT VERIFY" in capsys.readouterr().out
    assert _run("verify", "--json") == 1
    result = json.loads(capsys.readouterr().out)
    assert result["verified"] is False and result["problems"]


def test_expired_consent_shows_as_off(agent_home, capsys):
    """With an injected clock a year and a day on, a consent shows as expired."""
    clock = Clock()
    _run("grant", "product_analytics", "--yes", clock=clock)
    clock.now += 366 * DAY
    assert _run("show", "--json", clock=clock) == 0
    capsys.readouterr()
    assert _run("show", "product_analytics", clock=clock) == 0
    assert "older than 365 days" in capsys.readouterr().out


def test_through_the_real_cli(agent_home):
    """endpoint-agent consent grant, show and withdraw work as a user runs them."""
    granted = run_cli("consent", "grant", "product_analytics", "--yes", home=agent_home)
    assert granted.returncode == 0, granted.stderr
    shown = run_cli("consent", "show", "--json", home=agent_home)
    assert {p["name"]: p["allowed"] for p in json.loads(shown.stdout)["purposes"]}[
        "product_analytics"
    ] is True
    withdrawn = run_cli("consent", "withdraw", "product_analytics", home=agent_home)
    assert withdrawn.returncode == 0, withdrawn.stderr
    assert run_cli("consent", "verify", home=agent_home).returncode == 0
