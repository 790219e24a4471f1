"""Uninstall: the service goes, erasure is requested, the keys are shredded, only a live age block stays."""

from __future__ import annotations

import datetime as dt
import sys

from setup_support import EXAMPLE_ANSWERS, tree

from installer.agegate import AgePolicy
from installer.layout import make_layout
from installer.screens import Console
from installer.uninstall import uninstall

pytest_plugins = ["setup_fixtures"]


class _Captured(Console):
    def __init__(self, answer: str | None = None) -> None:
        self.out, self.answer = "", answer

    def say(self, text: str) -> None:
        self.out += text

    def ask(self, prompt: str) -> str:
        self.out += prompt
        if self.answer is None:
            raise EOFError
        return self.answer


def _install(setup_env) -> None:
    out = setup_env.run(*setup_env.install_args("--unattended", str(EXAMPLE_ANSWERS)))
    assert out.returncode == 0, out.stdout + out.stderr


def test_uninstall_removes_everything_and_says_what_it_did(setup_env):
    """After uninstall the prefix is gone, the keys were shredded, and the home holds nothing new."""
    home_before = tree(setup_env.home)
    _install(setup_env)
    out = setup_env.run("uninstall", "--prefix", str(setup_env.prefix), "--user", "--yes")
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "endpoint-agent was uninstalled." in text
    assert "erasure (as `endpoint-agent forget`)" in text
    assert "ERASURE NOT" not in text  # nothing was sent, so nothing is left to erase upstream
    assert text.count("crypto-shredded") >= 2  # the master secret and the data key
    assert "Nothing of endpoint-agent is left on this device." in text
    assert not setup_env.prefix.exists()
    assert tree(setup_env.home) == home_before


def test_uninstall_leaves_only_a_live_retry_block_and_says_where(setup_env):
    """A refused age check elsewhere on the device: uninstall keeps that marker and names it."""
    _install(setup_env)
    young = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3650)).isoformat()
    other = setup_env.root / "other-prefix"
    args = ["--prefix", str(other), "--user", "--no-service", "--binary", str(setup_env.agent)]
    refused = setup_env.run(*args, stdin=f"DE\n{young}\n")
    assert refused.returncode == 3, refused
    assert setup_env.outside_marker.exists()
    out = setup_env.run("uninstall", "--prefix", str(setup_env.prefix), "--user", "--yes")
    assert out.returncode == 0, out
    assert f"Left in place: the age check's retry-block marker ({setup_env.outside_marker}" in out.stdout
    assert setup_env.outside_marker.exists()
    assert not setup_env.prefix.exists()


def test_uninstall_without_an_install_is_a_clear_error(setup_env):
    """Nothing installed at the prefix: exit 1 and the receipt's place named."""
    out = setup_env.run("uninstall", "--prefix", str(setup_env.prefix), "--user", "--yes")
    assert out.returncode == 1
    assert "No endpoint-agent installation found" in out.stdout
    assert str(setup_env.prefix / "state" / "install.json") in out.stdout


def test_an_uninstall_dry_run_changes_nothing(setup_env):
    """uninstall --dry-run lists its steps and leaves every file as it was."""
    _install(setup_env)
    before = tree(setup_env.root)
    out = setup_env.run("uninstall", "--prefix", str(setup_env.prefix), "--user", "--dry-run")
    assert out.returncode == 0
    assert "request erasure of this install's records" in out.stdout
    assert tree(setup_env.root) == before


def test_a_build_without_forget_says_erasure_was_not_requested(setup_env, monkeypatch):
    """When the agent has no `forget`, uninstall says so plainly and exits 4, never silently."""
    _install(setup_env)
    monkeypatch.setitem(sys.modules, "agent.governance.rights", None)  # import fails as in such a build
    console = _Captured()
    layout = make_layout("user", setup_env.prefix, service=False)
    code = uninstall(layout, AgePolicy.load(), console, confirmed=True)
    assert code == 4
    assert "ERASURE NOT REQUESTED" in console.out
    assert f"crypto-shredded {setup_env.prefix / 'state' / 'master.key'}" in console.out
    assert not setup_env.prefix.exists()


def test_uninstall_off_a_terminal_needs_yes(setup_env):
    """Uninstall erases for good: without --yes and without a terminal it changes nothing (exit 2)."""
    _install(setup_env)
    before = tree(setup_env.root)
    out = setup_env.run("uninstall", "--prefix", str(setup_env.prefix), "--user")
    assert out.returncode == 2
    assert "off a terminal it needs --yes" in out.stdout
    assert tree(setup_env.root) == before


def test_uninstall_on_a_terminal_asks_first(setup_env):
    """On a terminal it shows what it will do and goes on only on "yes"."""
    _install(setup_env)
    layout = make_layout("user", setup_env.prefix, service=False)
    before = tree(setup_env.root)
    declined = _Captured("no")
    assert uninstall(layout, AgePolicy.load(), declined, interactive=True) == 1
    assert "Uninstall would:" in declined.out
    assert "Nothing was changed." in declined.out
    assert tree(setup_env.root) == before
    accepted = _Captured("yes")
    assert uninstall(layout, AgePolicy.load(), accepted, interactive=True) == 0
    assert "endpoint-agent was uninstalled." in accepted.out
    assert not setup_env.prefix.exists()
