"""Scan history, export and policy-driven quarantine through the real command line."""

from __future__ import annotations

import json

from conftest import run_cli
from samples import eicar

from agent.config import bundled_rules_dir


def test_scan_history_is_sealed_on_disk_and_readable_in_the_export(tmp_path):
    """A detection's path is kept only sealed in agent.db, and the export shows it decrypted."""
    home = tmp_path / "home"
    target = tmp_path / "CNRYhistorycanary-dir" / "x.com"
    target.parent.mkdir()
    target.write_bytes(eicar())
    assert run_cli("scan", str(target), home=home).returncode == 1
    raw = b"".join(p.read_bytes() for p in home.iterdir() if p.name.startswith("agent.db"))
    assert b"CNRYhistorycanary" not in raw
    out = run_cli("export", "--out", str(tmp_path / "export.json"), home=home)
    assert out.returncode == 0, out.stderr
    exported = json.loads((tmp_path / "export.json").read_text())
    assert str(target) in json.dumps(exported)


def test_a_policy_that_quarantines_moves_the_file_and_restore_puts_it_back(tmp_path):
    """With actions.high = "quarantine", a detected file is moved away encrypted; restore is byte-identical."""
    home = tmp_path / "home"
    home.mkdir()
    policy = tmp_path / "policy.toml"
    text = (
        (bundled_rules_dir() / "policy.toml")
        .read_text()
        .replace('# critical = "quarantine"', 'high = "quarantine"')
    )
    policy.write_text(text)
    (home / "agent.toml").write_text(f'[privacy]\npolicy_file = "{policy}"\n')
    target = tmp_path / "dropped.com"
    target.write_bytes(eicar())
    scanned = run_cli("scan", str(target), home=home)
    assert scanned.returncode == 1
    assert not target.exists()
    assert b"-> quarantined (item " in scanned.stdout  # the user is told where the file went
    assert b"1 quarantined" in scanned.stdout
    target.write_bytes(eicar())
    lines = [
        json.loads(line) for line in run_cli("scan", "--json", str(target), home=home).stdout.splitlines()
    ]
    assert lines[0]["action"] == "quarantined" and lines[0]["quarantine_item"]
    assert lines[-1]["actions"] == {"quarantined": 1}
    assert run_cli("quarantine", "delete", lines[0]["quarantine_item"], home=home).returncode == 0
    listing = run_cli("quarantine", "list", home=home)
    assert listing.returncode == 0
    item = next(line.split()[0] for line in listing.stdout.decode().splitlines() if "dropped.com" in line)
    stored = list((home / "quarantine").iterdir())
    assert stored and all(eicar() not in p.read_bytes() for p in stored)
    assert run_cli("quarantine", "restore", item, home=home).returncode == 0
    assert target.read_bytes() == eicar()
