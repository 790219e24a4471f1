"""The analytics and support-bundle front-ends, parsed and run as the CLI will run them."""

from __future__ import annotations

import argparse
import json

import pytest

from agent import config
from agent.governance import EgressGate, render_notice
from agent.governance import analytics_commands as commands
from agent.governance.analytics import PURPOSE, Analytics
from agent.model import Classification, DataClass, Outcome, ScanRequest, Verdict, VerdictKind


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="endpoint-agent")
    sub = parser.add_subparsers(dest="command", required=True)
    commands.add_parsers(sub)
    return parser.parse_args(argv)


def _run(*argv: str) -> int:
    return commands.run(_parse(*argv), config.load())


def test_show_reports_the_mechanism_consent_and_local_counters(agent_home, capsys):
    """`analytics show --json`: off by default, ε per report, and the day's counters as counted."""
    cfg = config.load()
    with Analytics.open(cfg.state_dir) as analytics:
        verdict = Verdict(VerdictKind.CLEAN)
        analytics.count(
            Outcome(
                ScanRequest(path="x"),
                verdict,
                None,
                Classification("text", "txt", DataClass.NON_PERSONAL),
                None,
                0.0,
            )
        )
    assert _run("analytics", "show", "--json") == commands.EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["allowed"] is False
    assert doc["mechanism"]["epsilon_per_report"] == 1.0
    assert [d["counters"] for d in doc["days"]] == [{"objects.text": 1}]
    with EgressGate.open(cfg) as gate:
        gate.ledger.grant(PURPOSE, render_notice(gate.purposes, gate.purposes.get(PURPOSE)))
    assert _run("analytics", "show") == commands.EXIT_OK
    text = capsys.readouterr().out
    assert text.startswith("Product analytics: on")
    assert "objects.text 1" in text


def test_send_now_without_a_cloud_does_nothing(agent_home, capsys):
    """With no [upstream] url there is nowhere to send: exit 1 and a reason."""
    assert _run("analytics", "send-now") == commands.EXIT_NOT_DONE
    assert "no cloud is configured" in capsys.readouterr().err


def test_support_bundle_writes_a_clean_bundle(agent_home, tmp_path, capsys):
    """`support-bundle --out FILE` writes the file and says how much it holds."""
    out = tmp_path / "support.tar.gz"
    assert _run("support-bundle", "--out", str(out)) == commands.EXIT_OK
    assert out.is_file()
    assert "support bundle written" in capsys.readouterr().out


def test_support_bundle_refuses_and_names_the_kind(agent_home, tmp_path, capsys):
    """A planted e-mail in a --log file: exit 1, the kind and member named, the value not shown, no file."""
    log = tmp_path / "captured.log"
    log.write_text("bounce from pat.q.canary@example.org\n")
    out = tmp_path / "support.tar.gz"
    assert _run("support-bundle", "--out", str(out), "--log", str(log)) == commands.EXIT_NOT_DONE
    err = capsys.readouterr().err
    assert "email in logs/log-1.txt" in err
    assert "canary" not in err
    assert not out.exists()


@pytest.mark.parametrize("argv", [("support-bundle",), ("analytics",), ("analytics", "send")])
def test_incomplete_commands_are_usage_errors(argv):
    """A missing --out or action is refused by the parser."""
    with pytest.raises(SystemExit):
        _parse(*argv)
