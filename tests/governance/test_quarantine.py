"""Quarantine: files move in encrypted and come back byte-identical; damage and overwrites are refused."""

from __future__ import annotations

import ast
import io
import os
import stat
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rights_helpers import forms, outcome, raw_store_bytes  # type: ignore[import-not-found, unused-ignore]

import agent.governance.quarantine as quarantine_module
from agent.errors import ConfigError
from agent.governance.quarantine import (
    Quarantine,
    QuarantineAction,
    QuarantineError,
    parse_actions,
    wants_quarantine,
)
from agent.governance.vault import DataKey
from agent.model import VerdictKind

CONTENT = b"MZ\x90\x00 zq7canary-content " + bytes(range(256)) * 20


class Clock:
    def __init__(self, now: float = 1_800_000_000) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def state(tmp_path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def vault(state, clock):
    with Quarantine(state, DataKey.load_or_create(state), clock) as q:
        yield q


@pytest.fixture
def victim(tmp_path) -> Path:
    folder = tmp_path / "home" / "zq7canary-user"
    folder.mkdir(parents=True)
    path = folder / "zq7canary-invoice.exe"
    path.write_bytes(CONTENT)
    path.chmod(0o751)
    os.utime(path, ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
    return path


def test_round_trip_is_byte_identical_with_mode_and_time(vault, victim):
    """add() removes the file; restore() puts the same bytes back with the same mode and mtime."""
    before = victim.stat()
    item = vault.add(victim, ("EICAR_Test_File",))
    assert not victim.exists()
    assert (item.size, item.path, item.mode) == (len(CONTENT), str(victim), 0o751)
    assert vault.restore(item.id) == victim
    after = victim.stat()
    assert victim.read_bytes() == CONTENT
    assert stat.S_IMODE(after.st_mode) == 0o751
    assert after.st_mtime_ns == before.st_mtime_ns
    assert vault.entries() == []
    assert list(vault.dir.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="restoring the owner needs root")
def test_restore_as_root_puts_the_owner_back(vault, victim):
    """As root, the original uid and gid come back too."""
    os.chown(victim, 4242, 4343)
    item = vault.add(victim)
    vault.restore(item.id)
    assert (victim.stat().st_uid, victim.stat().st_gid) == (4242, 4343)


def test_quarantined_bytes_are_encrypted_private_and_inert(vault, victim):
    """The stored file differs from the original, holds no plaintext, is 0600 in a 0700 dir, no extension."""
    item = vault.add(victim)
    stored = vault.dir / item.id
    data = stored.read_bytes()
    assert data != CONTENT
    assert b"zq7canary-content" not in data
    assert CONTENT[:64] not in data
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(vault.dir.stat().st_mode) == 0o700
    assert stored.suffix == ""


def test_metadata_is_sealed_in_the_store(vault, victim, state):
    """The original path and file name are in no form in agent.db (they are sealed), yet list() shows them."""
    item = vault.add(victim, ("EICAR_Test_File",))
    raw = raw_store_bytes(state)
    for needle in (str(victim), "zq7canary-invoice", "zq7canary-user"):
        for form in forms(needle):
            assert form not in raw
    (listed,) = vault.entries()
    assert (listed.id, listed.path, listed.detections) == (item.id, str(victim), ("EICAR_Test_File",))


def test_restore_refuses_to_overwrite_an_existing_file(vault, victim):
    """A file now at the original path is left untouched; the item stays quarantined."""
    item = vault.add(victim)
    victim.write_bytes(b"the user's new file")
    with pytest.raises(QuarantineError, match="overwrite"):
        vault.restore(item.id)
    assert victim.read_bytes() == b"the user's new file"
    assert [i.id for i in vault.entries()] == [item.id]
    assert [p.name for p in victim.parent.iterdir()] == [victim.name]  # no temporary file left behind


def test_restore_to_another_path(vault, victim, tmp_path):
    """restore(id, to=PATH) writes the original bytes to PATH."""
    item = vault.add(victim)
    other = tmp_path / "restored.bin"
    assert vault.restore(item.id, other) == other
    assert other.read_bytes() == CONTENT


def test_restore_into_a_vanished_directory_is_refused(vault, victim):
    """When the original directory is gone, restore refuses and keeps the item."""
    item = vault.add(victim)
    victim.parent.rmdir()
    with pytest.raises(QuarantineError, match="does not exist"):
        vault.restore(item.id)
    assert len(vault.entries()) == 1


@pytest.mark.parametrize("damage", ["flip", "truncate", "append", "swap"])
def test_a_damaged_item_is_not_restored(vault, victim, tmp_path, damage):
    """A changed, cut-off, extended or swapped quarantine file is refused and nothing appears at the target."""
    vault._chunk = 1000
    item = vault.add(victim)
    stored = vault.dir / item.id
    data = bytearray(stored.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 1
    elif damage == "truncate":
        data = data[: len(data) - 1100]
    elif damage == "append":
        data += data[4:1000]
    else:
        other = tmp_path / "other.exe"
        other.write_bytes(b"x" * len(CONTENT))
        data = bytearray((vault.dir / vault.add(other).id).read_bytes())
    stored.write_bytes(bytes(data))
    with pytest.raises(QuarantineError):
        vault.restore(item.id)
    assert not victim.exists()
    assert list(victim.parent.iterdir()) == []


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory", "missing"])
def test_only_regular_files_are_quarantined(vault, tmp_path, kind):
    """Symbolic links, FIFOs, directories and missing paths are refused, and nothing is stored."""
    path = tmp_path / "thing"
    if kind == "symlink":
        (tmp_path / "target").write_bytes(b"x")
        path.symlink_to(tmp_path / "target")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    with pytest.raises(QuarantineError):
        vault.add(path)
    assert vault.entries() == []
    assert os.path.lexists(path) == (kind != "missing")


def test_files_inside_the_state_dir_are_refused(vault, state):
    """The agent never quarantines its own state (keys, database, quarantine)."""
    with pytest.raises(QuarantineError, match="state dir"):
        vault.add(state / "data.key")
    assert (state / "data.key").exists()


def test_delete_destroys_the_item(vault, victim):
    """delete(id) removes the row and the encrypted file; a second delete reports False."""
    item = vault.add(victim)
    assert vault.delete(item.id) is True
    assert vault.entries() == []
    assert not (vault.dir / item.id).exists()
    assert vault.delete(item.id) is False
    with pytest.raises(QuarantineError, match="no quarantined item"):
        vault.restore(item.id)


def test_items_expire_by_the_time_they_were_added(vault, clock, tmp_path):
    """purge(before) destroys items added before it and keeps younger ones."""
    old, young = tmp_path / "old.exe", tmp_path / "young.exe"
    old.write_bytes(b"old")
    young.write_bytes(b"young")
    first = vault.add(old)
    clock.now += 10 * 86_400
    second = vault.add(young)
    assert vault.purge(clock.now - 86_400) == 1
    assert [i.id for i in vault.entries()] == [second.id]
    assert not (vault.dir / first.id).exists()


def test_items_cannot_be_opened_after_the_key_is_replaced(vault, victim, state):
    """With another data key (the old one shredded), list() marks items unreadable and restore refuses."""
    item = vault.add(victim)
    other = Quarantine(state, DataKey(bytes(32)))
    try:
        (listed,) = other.entries()
        assert listed.path is None
        assert listed.unreadable
        with pytest.raises(QuarantineError, match="cannot be restored"):
            other.restore(item.id)
    finally:
        other.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=5000), chunk=st.integers(min_value=1, max_value=1500))
def test_any_content_round_trips(state, tmp_path, content, chunk):
    """Property: any content, cut into frames of any size, is restored byte-identical."""
    with Quarantine(state, DataKey.load_or_create(state), chunk=chunk) as vault:
        path = tmp_path / "sample.bin"
        path.write_bytes(content)
        item = vault.add(path)
        vault.restore(item.id)
    assert path.read_bytes() == content
    path.unlink()


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300), cut=st.integers(min_value=0, max_value=400))
def test_the_frame_reader_raises_only_quarantine_error(vault, data, cut):
    """Property: arbitrary bytes, alone or after a valid header, give QuarantineError and nothing else."""
    for blob in (data, b"EAQ1" + data[:cut]):
        with pytest.raises(QuarantineError):
            list(vault.frames("0" * 32, io.BytesIO(blob)))


def test_quarantine_never_talks_to_the_network():
    """The quarantine module imports no network code (it never uploads a file)."""
    tree = ast.parse(Path(quarantine_module.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    for name in imported:
        assert not name.startswith(("agent.upstream", "httpx", "socket", "urllib", "http")), name


# ---------------------------------------------------------------------- the policy hook


def test_actions_table_is_checked():
    """[actions] maps severities to report or quarantine; anything else is a ConfigError naming the key."""
    assert parse_actions({"critical": "quarantine", "low": "report"}, "p") == {
        "critical": "quarantine",
        "low": "report",
    }
    with pytest.raises(ConfigError, match=r"actions\.high"):
        parse_actions({"high": "delete"}, "p")
    with pytest.raises(ConfigError, match="table"):
        parse_actions(["quarantine"], "p")


@pytest.mark.parametrize(
    ("verdict", "severity", "data", "expected"),
    [
        (VerdictKind.MALICIOUS, "critical", None, True),
        (VerdictKind.SUSPICIOUS, "critical", None, True),
        (VerdictKind.MALICIOUS, "high", None, False),  # severity not configured: report only
        (VerdictKind.CLEAN, "critical", None, False),
        (VerdictKind.UNSCANNED, "critical", None, False),
        (VerdictKind.MALICIOUS, "critical", b"stream bytes", False),  # nothing on disk to move
    ],
)
def test_which_outcomes_the_policy_quarantines(verdict, severity, data, expected):
    """Only threats whose severity is set to quarantine, on a real file, are quarantined."""
    found = outcome("/x", verdict, severity, data=data)
    assert wants_quarantine(found, {"critical": "quarantine"}) is expected


def test_the_default_policy_reports_only():
    """With no [actions], nothing is quarantined."""
    assert not wants_quarantine(outcome("/x", severity="critical"), {})


def test_the_session_hook_quarantines_a_detected_file(vault, victim):
    """QuarantineAction moves a file the policy wants quarantined and says so in the outcome."""
    hook = QuarantineAction(vault, {"high": "quarantine"})
    done = hook(outcome(str(victim)))
    assert done.action == "quarantined"
    assert done.action_detail is not None
    assert not victim.exists()
    assert vault.get(done.action_detail).detections == ("EICAR_Test_File",)
    failed = hook(outcome(str(victim)))  # already gone: logged and reported, not raised
    assert failed.action == "quarantine_failed"
    assert "cannot open" in (failed.action_detail or "")
    assert hook.quarantined == 1


def test_a_report_only_request_is_never_quarantined(vault, victim):
    """A request marked report-only (a clamd client's SCAN) leaves the file where it is."""
    hook = QuarantineAction(vault, {"high": "quarantine"})
    found = outcome(str(victim))
    found = msgspec.structs.replace(found, request=msgspec.structs.replace(found.request, act=False))
    assert hook(found).action is None
    assert victim.exists()
    assert vault.entries() == []


def test_a_file_replaced_since_its_scan_is_not_quarantined(vault, victim, tmp_path):
    """The verdict was about one file; another renamed over its path meanwhile stays where it is."""
    hook = QuarantineAction(vault, {"high": "quarantine"})
    found = outcome(str(victim))  # the verdict, with the scanned file's identity
    innocent = tmp_path / "innocent"
    innocent.write_bytes(b"someone else's file")
    innocent.replace(victim)
    assert hook(found).action == "quarantine_failed"
    assert victim.read_bytes() == b"someone else's file"
    assert vault.entries() == []
