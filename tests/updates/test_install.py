"""Installing bundles: atomic swap, every refusal leaves the running rules untouched, rollback."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import tarfile
import threading

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.engine import load_rules
from agent.errors import ConfigError
from agent.updates import BundleError, UpdateSettings, installed_rules_dir, rollback, status, update

pytest_plugins = ["update_fixtures"]

BROKEN = b"rule Broken { condition: nope }"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def snapshot(state_dir) -> dict[str, str]:
    """Every entry under <state>/rules with its link target or content hash."""
    root = state_dir / "rules"
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


def test_update_installs_a_versioned_directory_and_points_current_at_it(forge, state_dir):
    """A good bundle lands in rules/<version>/, compiles, and becomes what the service loads."""
    assert installed_rules_dir(state_dir) is None
    done = update(forge.write(forge.bundle(5)), state_dir, forge.settings())
    assert (done.version, done.previous, done.files) == (5, None, len(forge.files(5)))
    current = state_dir / "rules" / "5"
    assert installed_rules_dir(state_dir) == current
    assert os.readlink(state_dir / "rules" / "current") == "5"
    assert load_rules(current).version == done.rules_version
    assert (current / "yara" / "marker_5.yar").read_bytes() == forge.files(5)["yara/marker_5.yar"]
    assert (current / "manifest.json").is_file()
    assert (current / "manifest.sig").is_file()
    info = status(state_dir)
    assert (info.current, info.previous, info.highest, info.files) == (5, None, 5, len(forge.files(5)))


def test_updates_keep_only_the_current_and_previous_versions(forge, state_dir):
    """Each update moves current to previous; older versions are removed."""
    for version in (1, 2, 3):
        update(forge.bundle(version), state_dir, forge.settings())
    names = sorted(p.name for p in (state_dir / "rules").iterdir() if not p.name.startswith("."))
    assert names == ["2", "3", "current", "previous", "state.json"]
    assert os.readlink(state_dir / "rules" / "previous") == "2"


def test_no_pinned_key_refuses_every_update(forge, state_dir):
    """Without a pinned key nothing can be verified, so nothing is installed."""
    with pytest.raises(ConfigError, match="pinned"):
        update(forge.bundle(), state_dir, UpdateSettings())
    assert not (state_dir / "rules").exists()


def _symlinked(forge, make_raw_tar):
    special = tarfile.TarInfo("rules/yara/link.yar")
    special.type, special.linkname = tarfile.SYMTYPE, "/etc/passwd"
    return make_raw_tar([*forge.members(9), special])


def _hardlinked(forge, make_raw_tar):
    special = tarfile.TarInfo("rules/yara/link.yar")
    special.type, special.linkname = tarfile.LNKTYPE, "rules/yara/eicar.yar"
    return make_raw_tar([*forge.members(9), special])


def _hash_mismatch(forge, _raw):
    members = forge.members(9)
    name, data = members[-1]
    return forge.pack([*members[:-1], (name, data.replace(b"rule", b"RULE"))])


REFUSALS = {
    "bad_signature": lambda f, _r: f.pack(
        [(n, d.replace(b'"version":9', b'"version":10')) for n, d in f.members(9)]
    ),
    "unknown_key": lambda f, _r: f.bundle(9, key=Ed25519PrivateKey.generate()),
    "extra_file": lambda f, _r: f.pack(
        [*f.members(9), ("rules/yara/extra.yar", b"rule E { condition: true }")]
    ),
    "missing_file": lambda f, _r: f.pack(f.members(9)[:-1]),
    "dotdot_path": lambda f, _r: f.pack([*f.members(9), ("rules/../../evil.yar", b"x")]),
    "absolute_path": lambda f, _r: f.pack([*f.members(9), ("/tmp/evil.yar", b"x")]),
    "symlink": _symlinked,
    "hardlink": _hardlinked,
    "truncated": lambda f, _r: f.bundle(9)[:-100],
    "hash_mismatch": _hash_mismatch,
    "not_newer": lambda f, _r: f.bundle(3),
    "not_newer_same": lambda f, _r: f.bundle(5),
    "stale": lambda f, _r: f.bundle(9, created=NOW - dt.timedelta(days=15)),
    "future": lambda f, _r: f.bundle(9, created=NOW + dt.timedelta(days=3)),
    "agent_too_old": lambda f, _r: f.bundle(9, agent="99.0"),
    "compile_error": lambda f, _r: f.bundle(9, files=f.files(9, {"yara/broken.yar": BROKEN})),
    "compile_error_policy": lambda f, _r: f.bundle(
        9, files={**f.files(9), "policy.toml": b"severity = [oops"}
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_refused_update_leaves_the_current_rules_untouched(forge, state_dir, make_raw_tar, case):
    """Every refusal gives its code and a reason, and the rules directory is byte for byte as before."""
    update(forge.bundle(5), state_dir, forge.settings())
    before = snapshot(state_dir)
    with pytest.raises(BundleError) as caught:
        update(REFUSALS[case](forge, make_raw_tar), state_dir, forge.settings())
    assert caught.value.code == case.removesuffix("_same").removesuffix("_policy")
    assert caught.value.reason
    assert snapshot(state_dir) == before
    assert installed_rules_dir(state_dir) == state_dir / "rules" / "5"


def test_compile_error_names_the_file_but_not_the_staging_path(forge, state_dir):
    """The compile error says which rule file failed, without a temporary path."""
    files = forge.files(2, {"yara/broken.yar": BROKEN})
    with pytest.raises(BundleError) as caught:
        update(forge.bundle(2, files=files), state_dir, forge.settings())
    assert "yara/broken.yar" in caught.value.reason
    assert ".staging" not in caught.value.reason
    assert [p.name for p in (state_dir / "rules").iterdir()] == [".lock"]


def test_max_age_is_configurable(forge, state_dir):
    """A 20-day-old bundle is refused at the default 14 days and taken with max_age_days=30."""
    old = forge.bundle(1, created=NOW - dt.timedelta(days=20))
    with pytest.raises(BundleError, match="older than 14 days"):
        update(old, state_dir, forge.settings())
    assert update(old, state_dir, forge.settings(max_age_days=30)).version == 1


def test_rollback_returns_to_the_previous_version_and_never_reinstalls_the_withdrawn_one(forge, state_dir):
    """After rollback the previous rules are current; the withdrawn version is refused; a newer one is taken."""
    update(forge.bundle(1), state_dir, forge.settings())
    update(forge.bundle(2), state_dir, forge.settings())
    done = rollback(state_dir)
    assert (done.withdrawn, done.current) == (2, 1)
    assert installed_rules_dir(state_dir) == state_dir / "rules" / "1"
    assert not (state_dir / "rules" / "2").exists()
    assert not (state_dir / "rules" / "previous").exists()
    info = status(state_dir)
    assert (info.current, info.previous, info.highest, info.withdrawn) == (1, None, 2, (2,))
    with pytest.raises(BundleError) as caught:
        update(forge.bundle(2), state_dir, forge.settings())
    assert caught.value.code == "not_newer"
    assert update(forge.bundle(3), state_dir, forge.settings()).previous == 1


def test_rollback_of_the_only_version_returns_to_the_configured_rules(forge, state_dir):
    """With no previous version, rollback removes current; a second rollback has nothing to do."""
    update(forge.bundle(4), state_dir, forge.settings())
    assert rollback(state_dir).current is None
    assert installed_rules_dir(state_dir) is None
    with pytest.raises(BundleError) as caught:
        rollback(state_dir)
    assert caught.value.code == "no_previous"
    with pytest.raises(BundleError, match="not above 4"):
        update(forge.bundle(4), state_dir, forge.settings())


def test_rollback_with_nothing_installed_is_refused(state_dir):
    """A fresh install has nothing to roll back to."""
    with pytest.raises(BundleError) as caught:
        rollback(state_dir)
    assert caught.value.code == "no_previous"


def test_leftovers_of_an_interrupted_install_are_cleaned(forge, state_dir):
    """A staging directory and an unlinked version directory left by a crash do not block an update."""
    update(forge.bundle(1), state_dir, forge.settings())
    root = state_dir / "rules"
    (root / ".staging-crashed").mkdir()
    (root / ".current.0123456789ab").symlink_to("1")
    (root / "2").mkdir()
    (root / "2" / "junk.yar").write_text("rule Junk { condition: nope }")
    update(forge.bundle(2), state_dir, forge.settings())
    assert not (root / ".staging-crashed").exists()
    assert not (root / ".current.0123456789ab").is_symlink()
    assert not (root / "2" / "junk.yar").exists()
    assert load_rules(root / "2").yara_rules > 0


def test_a_lost_state_file_keeps_the_high_water_mark_of_the_links(forge, state_dir):
    """With state.json corrupt, versions at or below the installed ones are still refused."""
    update(forge.bundle(1), state_dir, forge.settings())
    update(forge.bundle(2), state_dir, forge.settings())
    (state_dir / "rules" / "state.json").write_text("{not json")
    with pytest.raises(BundleError, match="not above 2"):
        update(forge.bundle(2), state_dir, forge.settings())


def test_concurrent_updates_serialize(forge, state_dir):
    """Two updates at once never interleave: the newest wins and the other is installed or refused."""
    bundles = [forge.bundle(v) for v in (10, 11)]
    errors: list[BaseException] = []

    def run(data):
        try:
            update(data, state_dir, forge.settings())
        except BundleError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(b,)) for b in bundles]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(isinstance(e, BundleError) and e.code == "not_newer" for e in errors)
    assert installed_rules_dir(state_dir) == state_dir / "rules" / "11"
    assert not [p for p in (state_dir / "rules").iterdir() if p.name.startswith((".staging", ".current"))]
