"""--dry-run: every file an install would write is listed, and nothing at all is written."""

from __future__ import annotations

import re
from pathlib import Path

from setup_support import EXAMPLE_ANSWERS, tree

pytest_plugins = ["setup_fixtures"]


def _planned_paths(stdout: str) -> set[str]:
    plan = stdout.split("An install would:\n", 1)[1]
    return set(re.findall(r"^  (?:create directory|write|create) (/\S+)", plan, re.MULTILINE))


def test_a_dry_run_writes_nothing_and_lists_what_the_install_then_writes(setup_env):
    """The dry run leaves every byte as it was; the real install writes exactly the planned files."""
    args = setup_env.install_args("--unattended", str(EXAMPLE_ANSWERS))
    before = tree(setup_env.root)
    dry = setup_env.run(*args, "--dry-run")
    assert dry.returncode == 0, dry
    assert "Dry run: nothing was written." in dry.stdout
    assert tree(setup_env.root) == before
    planned = _planned_paths(dry.stdout)

    real = setup_env.run(*args)
    assert real.returncode == 0, real.stdout + real.stderr
    written = {str(setup_env.prefix / rel) for rel in tree(setup_env.prefix)} | {str(setup_env.prefix)}
    assert planned <= written, planned - written
    receipt = (setup_env.prefix / "state" / "install.json").stat().st_mtime_ns
    for path in map(Path, written - planned):  # made by the agent the self-test ran, after the install
        state = setup_env.prefix / "state"
        assert state in (path, *path.parents) and path.stat().st_mtime_ns >= receipt, path


def test_a_dry_run_like_the_build_selftest_exits_0_and_touches_no_home(setup_env):
    """`--dry-run --unattended FILE --prefix DIR` exits 0 and writes nothing, not even under $HOME."""
    before = tree(setup_env.root)
    out = setup_env.run("--dry-run", "--unattended", str(EXAMPLE_ANSWERS), "--prefix", str(setup_env.prefix))
    assert out.returncode == 0, out
    assert tree(setup_env.root) == before
    assert str(setup_env.prefix / "state" / "master.key") in out.stdout
    assert "A real install would stop before writing anything:" in out.stdout  # no systemd, no binary here


def test_an_interactive_dry_run_records_nothing_after_a_refusal(setup_env):
    """A refused age check in a dry run writes no marker (the dry run writes nothing)."""
    before = tree(setup_env.root)
    out = setup_env.run(*setup_env.install_args("--dry-run"), stdin="DE\n2020-01-01\n")
    assert out.returncode == 3, out
    assert "Setup cannot continue on this device." in out.stdout
    assert tree(setup_env.root) == before
