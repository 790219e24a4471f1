"""`endpoint-agent rules ...`: the front-end functions the CLI wires in, driven as a user would."""

from __future__ import annotations

import argparse
import json
import types

import pytest

from agent.config import Config, bundled_rules_dir
from agent.updates import UpdateSettings
from agent.updates.commands import add_parser, run

pytest_plugins = ["update_fixtures"]


def rules_cli(argv, config, settings=None) -> int:
    parser = argparse.ArgumentParser(prog="endpoint-agent")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["rules", *argv]), config, settings)


@pytest.fixture
def config(state_dir) -> Config:
    return Config(state_dir=state_dir, config_file=state_dir / "agent.toml")


def test_vendor_to_agent_round_trip(tmp_path, config, capsys):
    """keygen, build, verify, update, status, rollback: each says what it did and exits 0."""
    key = tmp_path / "vendor.pem"
    assert rules_cli(["keygen", str(key)], config) == 0
    public = capsys.readouterr().out.strip().rsplit(" ", 1)[-1]
    bundle = tmp_path / "rules.tar.gz"
    assert (
        rules_cli(
            ["build", str(bundled_rules_dir()), "--key", str(key), "--out", str(bundle), "--version", "3"],
            config,
        )
        == 0
    )
    assert "version 3" in capsys.readouterr().out
    assert rules_cli(["verify", str(bundle), "--pinned-key", public], config) == 0
    assert capsys.readouterr().out.startswith("OK: version 3")
    settings = UpdateSettings(pinned_keys=(public,))
    assert rules_cli(["update", str(bundle)], config, settings) == 0
    assert "installed rules version 3" in capsys.readouterr().out
    assert rules_cli(["status", "--json"], config, settings) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["current"], info["highest"], info["rules_dir"]) == (
        3,
        3,
        str(config.state_dir / "rules" / "3"),
    )
    assert rules_cli(["rollback"], config, settings) == 0
    assert "3 will not be reinstalled" in capsys.readouterr().out
    assert rules_cli(["status"], config, settings) == 0
    assert "current: -" in capsys.readouterr().out


def test_refusals_exit_1_with_the_reason_on_stderr(forge, config, capsys):
    """A refused bundle or a rollback with nothing installed exits 1 and says why."""
    tampered = forge.write(forge.pack(forge.members()[:-1]))
    assert rules_cli(["verify", str(tampered), "--pinned-key", forge.public], config) == 1
    assert "missing_file" in capsys.readouterr().err
    assert rules_cli(["update", str(tampered)], config, forge.settings()) == 1
    assert rules_cli(["rollback"], config, forge.settings()) == 1
    assert "no installed rules" in capsys.readouterr().err


def test_configuration_errors_exit_2(forge, config, capsys):
    """No pinned key, a bad pinned key, or a plain-http URL is a configuration error."""
    bundle = str(forge.write(forge.bundle()))
    assert rules_cli(["update", bundle], config, UpdateSettings()) == 2
    assert "pinned" in capsys.readouterr().err
    assert rules_cli(["verify", bundle], config, UpdateSettings()) == 2
    assert rules_cli(["verify", bundle, "--pinned-key", "nope"], config) == 2
    assert rules_cli(["update", "http://example.invalid/rules.tar.gz"], config, forge.settings()) == 2
    assert "https" in capsys.readouterr().err


def test_build_of_broken_rules_exits_1(tmp_path, config, capsys):
    """The vendor is told which rule failed to compile, and no bundle is written."""
    key = tmp_path / "vendor.pem"
    rules_cli(["keygen", str(key)], config)
    src = tmp_path / "src"
    src.mkdir()
    (src / "bad.yar").write_text("rule Bad { condition: nope }")
    assert rules_cli(["build", str(src), "--key", str(key), "--out", str(tmp_path / "b.tar.gz")], config) == 1
    assert "bad.yar" in capsys.readouterr().err
    assert not (tmp_path / "b.tar.gz").exists()


def test_settings_come_from_an_updates_section_when_the_config_has_one(config):
    """Without [updates] the defaults apply; with one, its fields (same names) are used."""
    assert UpdateSettings.from_config(config) == UpdateSettings()
    section = types.SimpleNamespace(
        pinned_keys=("k",), max_age_days=3, poll_interval=60.0, poll_jitter=5.0, enabled=False
    )
    settings = UpdateSettings.from_config(types.SimpleNamespace(updates=section))
    assert (settings.pinned_keys, settings.max_age_days, settings.poll_interval, settings.enabled) == (
        ("k",),
        3,
        60.0,
        False,
    )
