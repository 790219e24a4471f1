"""The data key and sealed values: 0600 files, AES-GCM round trips, tamper detection, crypto-shredding."""

from __future__ import annotations

import os
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import ConfigError
from agent.governance.vault import KEY_FILE, DataKey, UnsealError, connect, shred_file, transaction

KEY = DataKey(bytes(range(32)))


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_key_file_is_created_0600_in_a_0700_dir_and_reused(tmp_path):
    """The data key is 32 bytes in a 0600 file under a 0700 state dir, and the same key is loaded again."""
    state = tmp_path / "state"
    first = DataKey.load_or_create(state)
    assert _mode(state / KEY_FILE) == 0o600
    assert _mode(state) == 0o700
    assert len((state / KEY_FILE).read_bytes()) == 32
    assert DataKey.load_or_create(state).open(first.seal(b"x", b"t.c"), b"t.c") == b"x"


def test_sqlite_files_are_created_0600(tmp_path):
    """agent.db and its WAL and shared-memory files, created through connect(), are all 0600."""
    db = connect(tmp_path / "agent.db", "CREATE TABLE IF NOT EXISTS t (v BLOB);")
    with transaction(db):
        db.execute("INSERT INTO t VALUES (?)", (b"x" * 5000,))
    files = sorted(tmp_path.glob("agent.db*"))
    try:
        assert {p.name for p in files} >= {"agent.db", "agent.db-wal", "agent.db-shm"}
        assert {p.name: _mode(p) for p in files} == dict.fromkeys((p.name for p in files), 0o600)
    finally:
        db.close()


def test_a_key_readable_by_others_is_refused(tmp_path):
    """A data key file that others may read is refused rather than used."""
    DataKey.load_or_create(tmp_path)
    (tmp_path / KEY_FILE).chmod(0o640)
    with pytest.raises(ConfigError, match="readable by others"):
        DataKey.load_or_create(tmp_path)


def test_a_damaged_key_is_refused(tmp_path):
    """A key file of the wrong length is refused."""
    DataKey.load_or_create(tmp_path)
    (tmp_path / KEY_FILE).write_bytes(b"short")
    with pytest.raises(ConfigError, match="damaged"):
        DataKey.load_or_create(tmp_path)


def test_a_symlinked_key_is_not_followed(tmp_path):
    """A data key that is a symbolic link is refused (O_NOFOLLOW)."""
    (tmp_path / "elsewhere").write_bytes(bytes(32))
    (tmp_path / KEY_FILE).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="cannot read the data key"):
        DataKey.load_or_create(tmp_path)


def test_seal_is_randomized_and_not_plaintext():
    """Sealing the same value twice gives different blobs, and neither contains the plaintext."""
    secret = b"/home/alice/Documents/payslip.pdf"
    one, two = KEY.seal(secret, b"t.c"), KEY.seal(secret, b"t.c")
    assert one != two
    assert secret not in one
    assert secret not in two


@pytest.mark.parametrize("position", [0, 1, 3, 5, 16, 17, -17, -1])
def test_any_changed_byte_is_detected(position):
    """Flipping any byte (version, key id, nonce, ciphertext or tag) makes open() refuse."""
    blob = bytearray(KEY.seal(b"some personal value", b"t.c"))
    blob[position] ^= 0x01
    with pytest.raises(UnsealError):
        KEY.open(bytes(blob), b"t.c")


def test_a_value_moved_to_another_column_does_not_open():
    """The associated data binds a value to its table/column/row."""
    blob = KEY.seal(b"value", b"scan_history.location:1")
    with pytest.raises(UnsealError, match="changed"):
        KEY.open(blob, b"scan_history.location:2")


@pytest.mark.parametrize("blob", [b"", b"\x01", b"\x02" + bytes(40), bytes(20)])
def test_short_or_foreign_blobs_are_refused(blob):
    """Truncated values and unknown formats raise UnsealError, nothing else."""
    with pytest.raises(UnsealError):
        KEY.open(blob, b"t.c")


def test_deleting_the_key_makes_every_sealed_value_unreadable(tmp_path):
    """Crypto-shredding: after the key file is shredded, a new key cannot open any old value."""
    key = DataKey.load_or_create(tmp_path)
    blobs = [key.seal(f"/home/bob/file-{i}".encode(), b"t.c") for i in range(5)]
    assert shred_file(tmp_path / KEY_FILE)
    assert not (tmp_path / KEY_FILE).exists()
    fresh = DataKey.load_or_create(tmp_path)
    for blob in blobs:
        with pytest.raises(UnsealError, match="another data key"):
            fresh.open(blob, b"t.c")


def test_shredding_a_missing_file_reports_false(tmp_path):
    """shred_file() on a path that does not exist returns False and raises nothing."""
    assert shred_file(tmp_path / "absent") is False


def test_a_wrong_key_length_is_refused():
    """A data key must be exactly 32 bytes."""
    with pytest.raises(ConfigError):
        DataKey(bytes(16))


@given(plaintext=st.binary(max_size=4096), aad=st.binary(max_size=64), other=st.binary(max_size=64))
def test_seal_open_round_trips_and_binds_the_context(plaintext, aad, other):
    """Property: open(seal(p, a), a) == p, and with any other associated data it raises UnsealError."""
    blob = KEY.seal(plaintext, aad)
    assert KEY.open(blob, aad) == plaintext
    if other != aad:
        with pytest.raises(UnsealError):
            KEY.open(blob, other)


@given(blob=st.binary(max_size=200), aad=st.binary(max_size=16))
def test_open_raises_only_unseal_error_on_arbitrary_bytes(blob, aad):
    """Property: arbitrary bytes never open and never raise anything but UnsealError."""
    with pytest.raises(UnsealError):
        KEY.open(blob, aad)
