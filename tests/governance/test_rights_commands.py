"""``endpoint-agent export | forget | purge | quarantine`` front-ends, run in-process on a real agent home."""

from __future__ import annotations

import argparse
import json
import stat

import pytest
from rights_helpers import load_config, rows  # type: ignore[import-not-found, unused-ignore]

from agent.control import ControlServer
from agent.governance import rights_commands as commands
from agent.governance.history import History, HistoryRow
from agent.governance.vault import DataKey
from agent.outbox import Store
from agent.service import control_path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="endpoint-agent")
    commands.add_parsers(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(home, *argv: str, factory=None) -> int:
    return commands.run(_parser().parse_args(list(argv)), load_config(home), factory)


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "files" / "tool.exe"
    path.parent.mkdir()
    path.write_bytes(b"#!/bin/sh\necho payload\n")
    path.chmod(0o755)
    return path


def test_every_command_accepts_config_after_the_command(agent_home, tmp_path):
    """`export --config FILE ...` parses like the other subcommands (the lead's CLI passes it on)."""
    args = _parser().parse_args(["purge", "--config", str(tmp_path / "agent.toml")])
    assert args.config == tmp_path / "agent.toml"


def test_export_writes_a_private_file_and_prints_the_counts(agent_home, tmp_path, capsys):
    """export --out FILE writes the JSON document (0600) and says what is in it."""
    out = tmp_path / "me.json"
    assert _run(agent_home, "export", "--out", str(out)) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert json.loads(out.read_text())["scan_history"] == []
    assert "pseudonyms" in capsys.readouterr().out


def test_export_to_standard_output(agent_home, capsys):
    """export --out - prints the document itself."""
    assert _run(agent_home, "export", "--out", "-") == 0
    assert json.loads(capsys.readouterr().out)["format"] == "endpoint-agent-export/1"


def test_purge_prints_a_line_per_store(agent_home, capsys):
    """purge runs now and prints what each store lost."""
    assert _run(agent_home, "purge") == 0
    out = capsys.readouterr().out
    for store in ("history", "cache", "outbox", "sent_log", "quarantine", "logs"):
        assert store in out


def test_quarantine_add_list_restore(agent_home, victim, capsys):
    """add moves the file in, list shows where it came from, restore brings it back byte-identical."""
    content = victim.read_bytes()
    assert _run(agent_home, "quarantine", "add", str(victim), "--detection", "Shell_Dropper") == 0
    assert not victim.exists()
    assert _run(agent_home, "quarantine", "list", "--json") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    item = json.loads(lines[-1])
    assert (item["path"], item["detections"], item["mode"]) == (str(victim), ["Shell_Dropper"], 0o755)
    assert _run(agent_home, "quarantine", "list") == 0
    assert str(victim) in capsys.readouterr().out
    assert _run(agent_home, "quarantine", "restore", item["id"]) == 0
    assert victim.read_bytes() == content
    assert _run(agent_home, "quarantine", "list") == 0
    assert "the quarantine is empty" in capsys.readouterr().out


def test_quarantine_errors_have_exit_codes(agent_home, victim, tmp_path, capsys):
    """A refused add gives 1 (others still added); an unknown id gives 2; an existing target is not overwritten."""
    assert _run(agent_home, "quarantine", "add", str(tmp_path / "missing"), str(victim)) == 1
    assert "cannot open" in capsys.readouterr().err
    assert _run(agent_home, "quarantine", "restore", "0" * 32) == 2
    assert _run(agent_home, "quarantine", "delete", "0" * 32) == 2
    (item_id,) = [i for (i,) in rows(agent_home, "SELECT id FROM quarantine")]
    victim.write_bytes(b"new")
    assert _run(agent_home, "quarantine", "restore", item_id) == 2
    assert "overwrite" in capsys.readouterr().err
    assert victim.read_bytes() == b"new"
    assert _run(agent_home, "quarantine", "delete", item_id) == 0


def test_forget_asks_first_and_refuses_off_a_terminal(agent_home, capsys):
    """Without --yes and without a terminal, forget explains what it would erase and erases nothing."""
    key = DataKey.load_or_create(agent_home)
    with History(agent_home / "agent.db", key) as history:
        history.record([HistoryRow(1, "malicious", (), None, "/x")])
    assert _run(agent_home, "forget") == 2
    captured = capsys.readouterr()
    assert "1 scan history entries" in captured.out
    assert "--yes" in captured.err
    assert (agent_home / "data.key").exists()
    assert rows(agent_home, "SELECT count(*) FROM scan_history") == [(1,)]


def test_forget_yes_wipes_and_reports(agent_home, capsys):
    """forget --yes with nothing ever sent erases locally, shreds both keys and exits 0."""
    DataKey.load_or_create(agent_home)
    assert _run(agent_home, "forget", "--yes", factory=lambda _cfg: None) == 0
    out = capsys.readouterr().out
    assert "data.key: crypto-shredded" in out
    assert "master.key: crypto-shredded" in out
    assert not (agent_home / "data.key").exists()


def test_forget_exits_1_when_erasures_wait(agent_home, capsys):
    """When something was sent and no cloud can be asked now, forget exits 1 and says they are queued."""
    store = Store(agent_home / "agent.db")
    try:
        store.log_sent("cloud.example", "protection", "verdicts", b'[{"pseudonym": "' + b"ab" * 16 + b'"}]')
    finally:
        store.close()
    assert _run(agent_home, "forget", "--yes", factory=lambda _cfg: None) == 1
    assert "queued" in capsys.readouterr().out


def test_forget_refuses_while_the_service_runs(agent_home, capsys):
    """A service answering on the control socket holds the keys: forget refuses and erases nothing."""
    DataKey.load_or_create(agent_home)
    server = ControlServer(control_path(load_config(agent_home)), {"STATUS": lambda: {"running": True}})
    server.start()
    try:
        assert _run(agent_home, "forget", "--yes", factory=lambda _cfg: None) == 2
    finally:
        server.close()
    assert "stop it first" in capsys.readouterr().err
    assert (agent_home / "data.key").exists()
