"""Installs that cannot finish: a clear message, and nothing half-installed is left behind."""

from __future__ import annotations

import pytest
from conftest import without_dac_override
from setup_support import EXAMPLE_ANSWERS, tree

from installer.services import Systemd

pytest_plugins = ["setup_fixtures"]


def test_a_prefix_that_is_not_writable_stops_before_anything_is_written(setup_env):
    """A read-only parent directory: a message naming it, exit 1, no file anywhere."""
    parent = setup_env.root / "readonly"
    parent.mkdir(mode=0o555)
    prefix = parent / "prefix"
    before = tree(setup_env.root)
    args = ["--prefix", str(prefix), "--user", "--no-service", "--binary", str(setup_env.agent)]
    out = setup_env.run(*args, "--unattended", str(EXAMPLE_ANSWERS), prefix_cmd=without_dac_override())
    assert out.returncode == 1, out
    assert f"Setup stopped: {parent} is not writable" in out.stdout
    assert "Nothing was written." in out.stdout
    assert tree(setup_env.root) == before


def test_a_failing_self_test_rolls_back_every_file_and_directory(setup_env):
    """The service exits at once: the install is undone, keys and ledger included, and the log says what."""
    broken = setup_env.root / "broken-agent"
    broken.write_text("#!/bin/sh\necho 'cannot start' >&2\nexit 3\n")
    broken.chmod(0o755)
    before = tree(setup_env.root)
    args = ["--prefix", str(setup_env.prefix), "--user", "--no-service", "--binary", str(broken)]
    out = setup_env.run(*args, "--unattended", str(EXAMPLE_ANSWERS))
    assert out.returncode == 1, out
    assert "Setup failed: self-test: the service exited with 3" in out.stdout
    assert "cannot start" in out.stdout
    assert "Nothing of the install is left." in out.stdout
    for what in ("master.key", "data.key", "agent.db", "install.json", "endpoint-agent.service"):
        assert what in out.stdout.split("Rolled back:")[1], what
    assert not setup_env.prefix.exists()
    assert tree(setup_env.root) == before


def test_a_stale_key_in_the_state_dir_rolls_back_only_what_the_install_wrote(setup_env):
    """A master.key others can read fails the key step; the new files go, the existing state dir stays."""
    state = setup_env.prefix / "state"
    state.mkdir(parents=True)
    (state / "master.key").write_bytes(bytes(32))
    (state / "master.key").chmod(0o644)
    before = tree(setup_env.root)
    out = setup_env.run(*setup_env.install_args("--unattended", str(EXAMPLE_ANSWERS)))
    assert out.returncode == 1, out
    assert "readable by others" in out.stdout
    assert tree(setup_env.root) == before


def test_a_second_install_over_an_existing_one_changes_nothing(setup_env):
    """Installing twice: the second run names the existing install and leaves it exactly as it was."""
    args = setup_env.install_args("--unattended", str(EXAMPLE_ANSWERS))
    assert setup_env.run(*args).returncode == 0
    before = tree(setup_env.root)
    out = setup_env.run(*args)
    assert out.returncode == 1, out
    assert "endpoint-agent is already installed here" in out.stdout
    assert "uninstall" in out.stdout
    assert tree(setup_env.root) == before


@pytest.mark.parametrize("scope", ["user", "system"])
def test_an_absent_service_manager_is_named_and_nothing_is_written(setup_env, scope):
    """Without --no-service and no systemd: a clear message, the --no-service hint, nothing written."""
    if Systemd(scope).absent() is None:
        pytest.skip(f"systemd ({scope}) runs on this machine; this test checks the path where it does not")
    before = tree(setup_env.root)
    args = ["--prefix", str(setup_env.prefix), f"--{scope}", "--binary", str(setup_env.agent)]
    out = setup_env.run(*args, "--unattended", str(EXAMPLE_ANSWERS))
    assert out.returncode == 1, out
    assert "so the service cannot be installed; --no-service installs without it" in out.stdout
    assert (
        "systemd is not running on this machine" if scope == "system" else "no systemd user manager"
    ) in out.stdout
    assert tree(setup_env.root) == before


def test_a_missing_binary_is_named(setup_env):
    """--binary pointing nowhere stops setup before anything is written."""
    args = [
        "--prefix",
        str(setup_env.prefix),
        "--user",
        "--no-service",
        "--binary",
        str(setup_env.root / "nope"),
    ]
    out = setup_env.run(*args, "--unattended", str(EXAMPLE_ANSWERS))
    assert out.returncode == 1
    assert "is not an executable file" in out.stdout
    assert not setup_env.prefix.exists()
