"""The endpoint-cloud command line: TLS material, signing key, reputation seeding, record dumps, file modes."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import stat
import subprocess
import sys

import pytest

from agent.minimize.wire import decode_record

pytest_plugins = ["cloud_fixtures"]


def _cli(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloud", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_tls_writes_the_files_and_prints_the_pin(tmp_path):
    """init-tls writes ca.pem, server.pem and a 0600 server.key, and prints the pin that `pin` computes."""
    result = _cli("init-tls", str(tmp_path / "tls"))
    assert result.returncode == 0, result.stderr
    assert _mode(tmp_path / "tls" / "server.key") == 0o600
    assert (tmp_path / "tls" / "ca.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
    pin_line = [line for line in result.stdout.splitlines() if line.startswith("pin-sha256: ")]
    assert len(pin_line) == 1
    assert _cli("pin", str(tmp_path / "tls" / "server.pem")).stdout.strip() == pin_line[0].split(": ")[1]


def test_init_tls_refuses_to_overwrite(tmp_path):
    """A second init-tls on the same directory exits 2 and leaves the files alone."""
    _cli("init-tls", str(tmp_path))
    before = (tmp_path / "server.key").read_bytes()
    result = _cli("init-tls", str(tmp_path))
    assert result.returncode == 2
    assert "refusing to overwrite" in result.stderr
    assert (tmp_path / "server.key").read_bytes() == before


def test_signing_key_is_created_private_and_stable(tmp_path):
    """signing-key creates a 0600 key once and prints the same public key each time."""
    key = tmp_path / "k.pem"
    first, second = _cli("signing-key", str(key)), _cli("signing-key", str(key), "--show-public")
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout
    assert len(base64.b64decode(first.stdout.strip())) == 32
    assert _mode(key) == 0o600


def test_signing_key_show_public_needs_the_key(tmp_path):
    """--show-public on a missing key exits 2 and creates nothing."""
    result = _cli("signing-key", str(tmp_path / "missing.pem"), "--show-public")
    assert result.returncode == 2
    assert not (tmp_path / "missing.pem").exists()


def test_a_signing_key_readable_by_others_is_refused(tmp_path):
    """A signing key with group or other permissions is refused."""
    key = tmp_path / "k.pem"
    _cli("signing-key", str(key))
    key.chmod(0o644)
    assert _cli("signing-key", str(key)).returncode == 2


@pytest.mark.parametrize(
    "args",
    [
        ["add-bad-hash", "abc", "Name"],
        ["add-bad-hash", "0" * 64, "bad name with spaces"],
        ["add-bad-hash", "0" * 64, "/etc/passwd"],
        ["remove-bad-hash", "1" * 64],
    ],
)
def test_bad_reputation_edits_fail(tmp_path, args):
    """An invalid hash or name, or removing what is not listed, exits 1."""
    result = _cli(*args, "--db", str(tmp_path / "r.db"))
    assert result.returncode == 1
    assert result.stderr.startswith("endpoint-cloud: ")


def test_add_bad_hash_bumps_the_version(tmp_path):
    """Each new hash bumps the prefix-list version by one; upper-case input is normalized."""
    db = str(tmp_path / "r.db")
    assert _cli("add-bad-hash", "AB" * 32, "One", "--db", db).stdout.strip() == "prefix list version 1"
    assert _cli("add-bad-hash", "cd" * 32, "Two", "--db", db).stdout.strip() == "prefix list version 2"
    assert _cli("add-bad-hash", "ab" * 32, "One", "--db", db).stdout.strip() == "prefix list version 2"


def test_records_dumps_one_valid_record_per_line(cloud, cloud_authed, cloud_record):
    """`records --json` prints every stored record as one JSON line that the wire schema accepts."""
    sent = cloud_record()
    cloud_authed.post("/v1/verdicts", json=[sent])
    result = _cli("records", "--db", str(cloud.db), "--json")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert all(decode_record(line.encode()) for line in lines)
    assert sent in [json.loads(line) for line in lines]
    summary = _cli("records", "--db", str(cloud.db)).stdout
    assert f"{sent['record_id']} malicious executable EICAR_Test_File" in summary


def test_records_on_a_missing_database_fails_without_creating_it(tmp_path):
    """`records` on a path with no database exits 1 and creates no file."""
    assert _cli("records", "--db", str(tmp_path / "none.db"), "--json").returncode == 1
    assert list(tmp_path.iterdir()) == []


def test_database_files_are_private(cloud, cloud_authed, cloud_record):
    """The record and token databases, their WAL and shared-memory files, and the signing key are 0600."""
    cloud_authed.post("/v1/verdicts", json=[cloud_record()])
    files = [p for p in cloud.workdir.iterdir() if p.name.startswith("records") or p.name == "signing.pem"]
    assert {p.name for p in files} >= {
        "records.db",
        "records-auth.db",
        "records.db-wal",
        "records-auth.db-wal",
    }
    assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}


def test_tokens_are_stored_only_as_hashes_apart_from_records(cloud, cloud_token, cloud_authed, cloud_record):
    """No token appears in any database; its hash is only in the token database, never beside records."""
    cloud_authed.post("/v1/verdicts", json=[cloud_record()])
    digest = hashlib.sha256(cloud_token.encode()).digest()
    records = b"".join(p.read_bytes() for p in cloud.workdir.glob("records.db*"))
    tokens = b"".join(p.read_bytes() for p in cloud.workdir.glob("records-auth.db*"))
    assert cloud_token.encode() not in records + tokens
    assert digest in tokens
    assert digest not in records
    assert digest.hex().encode() not in records


def test_unknown_commands_and_missing_options_exit_2():
    """Bad usage exits 2, as argparse does."""
    assert _cli("nothing").returncode == 2
    assert _cli("records").returncode == 2
    assert _cli("add-bad-hash", secrets.token_hex(32), "X").returncode == 2
