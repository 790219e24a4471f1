"""`endpoint-agent scan` end to end, as a user runs it: real processes, real files, real SQLite."""

from __future__ import annotations

import os
import socket
import sqlite3
import stat
import subprocess
import sys

import pytest
import samples
from conftest import json_lines, run_cli, store_bytes, without_dac_override

EXPECTED_KEYS = {"path", "verdict", "detections", "kind", "data_class", "personal_data", "sha256", "upstream"}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A tree with malware test files, clean files, archives, a FIFO, a socket and symlinks."""
    root = tmp_path_factory.mktemp("tree")
    outside = tmp_path_factory.mktemp("outside")
    (outside / "eicar-outside.com").write_bytes(samples.eicar())
    (root / "docs").mkdir()
    (root / "docs" / "letter.txt").write_text("Dear Sir,\nplease find the minutes attached.\n")
    (root / "contacts.csv").write_text("name,email\nJane Roe,jane.roe@example.com\n")
    (root / "eicar.com").write_bytes(samples.eicar())
    (root / "deep.zip").write_bytes(samples.nested_zip(samples.eicar(), 3))
    (root / "too-deep.zip").write_bytes(samples.nested_zip(samples.eicar(), 20))
    (root / "bomb.zip").write_bytes(samples.zip_of({"zeros.bin": bytes(100 * 1024 * 1024)}))
    (root / "broken.zip").write_bytes(samples.zip_of({"a.bin": os.urandom(4000)})[:-60])
    (root / "report.docm").write_bytes(samples.docm(samples.ole_vba("AutoOpen")))
    (root / "tool").write_bytes(samples.elf(b"plain binary"))
    os.mkfifo(root / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock"))
    (root / "link-out").symlink_to(outside / "eicar-outside.com")
    (root / "loop").symlink_to(root)
    (root / "newline\nname.txt").write_text("hello")
    yield root
    sock.close()


@pytest.fixture(scope="module")
def scanned(tree, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    proc = run_cli("scan", "--json", "--receipt", str(tree), home=home)
    objects, summary = json_lines(proc.stdout)
    by_name = {os.path.relpath(o["path"], tree): o for o in objects}
    return proc, by_name, summary, home


def test_exit_code_is_one_when_something_is_found(scanned):
    """Detections give exit code 1, as clamscan does."""
    proc, *_ = scanned
    assert proc.returncode == 1, proc.stderr.decode()


def test_every_line_has_the_contract_keys(scanned):
    """Each object line has at least the keys later tools rely on, and a valid verdict."""
    _, by_name, _, _ = scanned
    for obj in by_name.values():
        assert set(obj) >= EXPECTED_KEYS
        assert obj["verdict"] in {"clean", "suspicious", "malicious", "unscanned", "error"}
        assert obj["data_class"] in {"personal", "non_personal", None}


def test_eicar_detected_with_hash_and_record(scanned):
    """EICAR is malicious, found by rule and hash, and its record carries the hash (non-personal)."""
    _, by_name, _, _ = scanned
    obj = by_name["eicar.com"]
    assert obj["verdict"] == "malicious"
    assert {(d["name"], d["source"]) for d in obj["detections"]} >= {("EICAR_Test_File", "yara")}
    assert obj["upstream"]["sha256"] == obj["sha256"]


def test_nested_detection_names_member(scanned):
    """A detection inside nested zips names the member path locally, never upstream."""
    _, by_name, _, _ = scanned
    obj = by_name["deep.zip"]
    assert obj["verdict"] == "malicious"
    members = [d.get("member") for d in obj["detections"] if d["source"] == "yara"]
    assert members == ["level1.zip/level0.zip/eicar.com"]
    assert "member" not in str(obj["upstream"])


@pytest.mark.parametrize(
    ("name", "limit"), [("too-deep.zip", "MaxRecursion"), ("bomb.zip", "CompressionRatio")]
)
def test_limits_are_unscanned_never_clean(scanned, name, limit):
    """EICAR 20 zips deep and a deflate bomb are unscanned with the limit named, not clean."""
    _, by_name, _, _ = scanned
    obj = by_name[name]
    assert obj["verdict"] == "unscanned"
    assert [d["name"] for d in obj["detections"]] == [f"Limits.Exceeded.{limit}"]
    assert obj["upstream"]["detections"] == [{"name": f"Limits.Exceeded.{limit}", "source": "limit"}]
    assert obj["upstream"]["sha256"] is None


def test_corrupt_archive_is_an_error(scanned):
    """A truncated zip gets verdict error with a reason, and the scan carries on."""
    _, by_name, _, _ = scanned
    assert by_name["broken.zip"]["verdict"] == "error"
    assert "zip" in by_name["broken.zip"]["reason"]


def test_macro_document_is_personal_so_no_hash_leaves(scanned):
    """A docm with an auto-exec macro is suspicious; as a document it is personal, so no hash goes up."""
    _, by_name, _, _ = scanned
    obj = by_name["report.docm"]
    assert obj["verdict"] == "suspicious"
    assert obj["kind"] == "document" and obj["data_class"] == "personal"
    assert obj["upstream"]["sha256"] is None and obj["upstream"]["size_bucket"] is None


def test_personal_data_is_counted_not_kept(scanned):
    """A CSV with an e-mail is personal, with counts only; a clean file produces no record."""
    _, by_name, _, _ = scanned
    obj = by_name["contacts.csv"]
    assert obj["data_class"] == "personal"
    assert obj["personal_data"].get("email") == 1
    assert obj["upstream"] is None


def test_special_files_and_symlinks_are_not_opened(scanned):
    """FIFOs, sockets and symlinks inside the tree are skipped; nothing outside the tree is scanned."""
    _, by_name, summary, _ = scanned
    assert not {"fifo", "sock", "link-out", "loop"} & set(by_name)
    assert summary["skipped"] == {"fifo": 1, "socket": 1, "symlink": 2}
    assert not any("outside" in p for p in by_name)


def test_summary_counts_and_receipt(scanned):
    """The summary line counts verdicts and holds the privacy receipt with the exact records."""
    _, by_name, summary, _ = scanned
    assert summary["files"] == len(by_name)
    assert summary["verdicts"]["malicious"] == 2
    receipt = summary["receipt"]
    assert (
        len(receipt["would_leave"]) == summary["records"] == sum(1 for o in by_name.values() if o["upstream"])
    )
    assert "kept local" in receipt["stayed_local"]["statement"]


def test_records_are_in_the_outbox(scanned):
    """Every record shown is queued in the SQLite outbox, which is created 0600."""
    _, by_name, _, home = scanned
    db = home / "agent.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    with sqlite3.connect(db) as conn:
        ids = {row[0] for row in conn.execute("SELECT record_id FROM outbox")}
    assert ids == {o["upstream"]["record_id"] for o in by_name.values() if o["upstream"]}


def test_second_scan_uses_the_cache(tree, scanned):
    """Scanning an unchanged tree again answers from the cache with the same verdicts."""
    _, first, _, home = scanned
    proc = run_cli("scan", "--json", str(tree), home=home)
    objects, summary = json_lines(proc.stdout)
    assert proc.returncode == 1
    again = {os.path.relpath(o["path"], tree): o for o in objects}
    assert {k: v["verdict"] for k, v in again.items()} == {k: v["verdict"] for k, v in first.items()}
    # Errors are scanned again; the rest is cached, detections inside archives with their member names.
    rescanned = [k for k, v in first.items() if v["verdict"] == "error"]
    assert rescanned == ["broken.zip"]
    assert summary["cached"] == len(again) - len(rescanned)
    in_members = {k for k, v in first.items() if any(d.get("member") for d in v["detections"])}
    assert in_members >= {"deep.zip", "too-deep.zip", "bomb.zip", "report.docm"}
    for name in in_members:
        assert again[name]["detections"] == first[name]["detections"], name


def test_cached_member_names_are_sealed(tree, scanned):
    """A cached detection inside an archive keeps its member name only sealed with the data key."""
    _, first, _, home = scanned
    members = {d["member"] for v in first.values() for d in v["detections"] if d.get("member")}
    assert members
    stored = store_bytes(home)
    for member in members:
        for part in member.split("/"):
            assert part.encode() not in stored, part


def test_clean_tree_exits_zero(tmp_path):
    """Nothing found and nothing failed gives exit code 0."""
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a.txt").write_text("hello\n")
    proc = run_cli("scan", str(tmp_path / "t"), home=tmp_path / "h")
    assert proc.returncode == 0, proc.stderr.decode()


def test_missing_path_exits_two(tmp_path):
    """A path that does not exist is an error: exit 2 with the reason."""
    proc = run_cli("scan", "--json", str(tmp_path / "nope"), home=tmp_path / "h")
    objects, _ = json_lines(proc.stdout)
    assert proc.returncode == 2
    assert objects[0]["verdict"] == "error"
    assert "no such file" in objects[0]["reason"]


@pytest.mark.parametrize("cache", [True, False])
def test_a_symlink_named_on_the_command_line_is_followed(tmp_path, tree, cache):
    """A link to a file, named as an argument, is scanned at its target and reported under its name;
    the verdict does not depend on the cache."""
    (tmp_path / "to-eicar").symlink_to(tree / "eicar.com")
    (tmp_path / "chain").symlink_to(tmp_path / "to-eicar")
    (tmp_path / "to-dir").symlink_to(tree / "docs")
    names = [str(tmp_path / name) for name in ("to-eicar", "chain", "to-dir")]
    flags = [] if cache else ["--no-cache"]
    for _ in range(2):  # the second run is answered from the cache, when there is one
        proc = run_cli("scan", "--json", *flags, *names, home=tmp_path / "h")
        objects, _ = json_lines(proc.stdout)
        by_path = {o["path"]: o for o in objects}
        assert proc.returncode == 1, proc.stderr.decode()
        assert {by_path[name]["verdict"] for name in names[:2]} == {"malicious"}
        assert by_path[str(tmp_path / "to-dir" / "letter.txt")]["verdict"] == "clean"


@pytest.mark.parametrize(("content", "code"), [("eicar", 1), ("clean", 2)])
def test_a_reader_that_goes_away_keeps_what_was_found(tmp_path, content, code):
    """``scan --json | head -1``: the scan stops quietly; found is 1, cut short with nothing found is 2."""
    tree = tmp_path / "t"
    tree.mkdir()
    data = samples.eicar() if content == "eicar" else b"nothing to see here\n"
    for n in range(400):
        (tree / f"f{n:03d}.txt").write_bytes(data)
    env = {**os.environ, "ENDPOINT_AGENT_HOME": str(tmp_path / "h")}
    cmd = [sys.executable, "-m", "agent", "scan", "--json", "--no-cache", str(tree)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().startswith(b"{")
        proc.stdout.close()  # as head does after its first line
        err = proc.stderr.read()
        assert proc.wait(timeout=120) == code, err.decode()
    assert b"Traceback" not in err


def test_stdin_is_scanned_as_one_stream(tmp_path):
    """`-` scans standard input as one object."""
    proc = run_cli("scan", "--json", "-", home=tmp_path / "h", stdin=samples.eicar())
    objects, _ = json_lines(proc.stdout)
    assert proc.returncode == 1
    assert objects[0]["path"] == "-"
    assert objects[0]["verdict"] == "malicious"
    assert not list((tmp_path / "h" / "tmp").iterdir())


def test_broken_rules_are_a_clear_startup_error(tmp_path):
    """A rule file with a syntax error stops the scan with exit 2, naming file and line."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "bad.yar").write_text("rule bad {\n condition: nope(\n}\n")
    (tmp_path / "f.txt").write_text("x")
    proc = run_cli("scan", "--rules", str(rules), str(tmp_path / "f.txt"), home=tmp_path / "h")
    assert proc.returncode == 2
    assert b"bad.yar:" in proc.stderr


def test_unknown_config_key_is_a_clear_error(tmp_path):
    """An unknown key in agent.toml stops with exit 2 and names the key."""
    home = tmp_path / "h"
    home.mkdir()
    (home / "agent.toml").write_text("[limits]\nmax_depth = 3\n")
    proc = run_cli("scan", str(tmp_path), home=home)
    assert proc.returncode == 2
    assert b"max_depth" in proc.stderr


def test_console_output_escapes_control_characters(tree, tmp_path):
    """A file name with a newline and an escape sequence prints as one inert line."""
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "evil\n\x1b[2Jname.com").write_bytes(samples.eicar())
    proc = run_cli("scan", str(tmp_path / "t"), home=tmp_path / "h")
    out = proc.stdout.decode()
    assert "\x1b[2J" not in out
    assert "evil\\x0a\\x1b[2Jname.com" in out


def test_unreadable_files_and_dirs_are_errors_and_the_scan_goes_on(tmp_path):
    """A file and a directory we may not read get 'permission denied'; the other files are scanned."""
    tree = tmp_path / "t"
    (tree / "locked").mkdir(parents=True)
    (tree / "locked" / "inside.txt").write_text("x")
    (tree / "secret.txt").write_text("x")
    (tree / "eicar.com").write_bytes(samples.eicar())
    os.chmod(tree / "secret.txt", 0)
    os.chmod(tree / "locked", 0)
    try:
        proc = run_cli("scan", "--json", str(tree), home=tmp_path / "h", prefix=without_dac_override())
    finally:
        os.chmod(tree / "locked", 0o700)
    objects, summary = json_lines(proc.stdout)
    by_name = {os.path.relpath(o["path"], tree): o for o in objects}
    assert by_name["secret.txt"]["verdict"] == "error"
    assert by_name["secret.txt"]["reason"] == "permission denied"
    assert by_name["locked"]["reason"] == "permission denied"
    assert by_name["eicar.com"]["verdict"] == "malicious"
    assert summary["not_fully_scanned"] == {"permission denied": 2}
    assert proc.returncode == 1


def test_scan_time_limit_gives_unscanned(tmp_path):
    """An object that runs out of max_scan_time is unscanned with Limits.Exceeded.MaxScanTime."""
    home = tmp_path / "h"
    home.mkdir()
    (home / "agent.toml").write_text("[limits]\nmax_scan_time = 0.0001\n")
    (tmp_path / "many.zip").write_bytes(samples.zip_of({f"m{i}.txt": b"x" * 100 for i in range(2000)}))
    proc = run_cli("scan", "--json", str(tmp_path / "many.zip"), home=home)
    objects, _ = json_lines(proc.stdout)
    assert objects[0]["verdict"] == "unscanned"
    assert [d["name"] for d in objects[0]["detections"]] == ["Limits.Exceeded.MaxScanTime"]
    assert proc.returncode == 2


def test_shredded_data_key_makes_sealed_entries_scan_again(tree, tmp_path):
    """Without the data key a sealed cache entry does not open: the archive is scanned again, same verdict."""
    home = tmp_path / "home"
    first, _ = json_lines(run_cli("scan", "--json", str(tree), home=home).stdout)
    (home / "data.key").unlink()  # what forget does, short of overwriting it first
    proc = run_cli("scan", "--json", str(tree), home=home)
    again, summary = json_lines(proc.stdout)
    in_members = [o for o in first if any(d.get("member") for d in o["detections"])]
    errors = [o for o in first if o["verdict"] == "error"]
    assert summary["cached"] == len(first) - len(in_members) - len(errors)
    assert sorted((o["path"], o["verdict"]) for o in again) == sorted(
        (o["path"], o["verdict"]) for o in first
    )


@pytest.mark.parametrize("garbage", [b"", b"\x93\x01", b"\x00sealed:" + b"\x01" * 40, bytes(range(256))])
def test_damaged_cache_rows_are_scanned_again(tree, tmp_path, garbage):
    """A cache row that does not decode (or unseal) costs a scan, never a wrong or missing verdict."""
    home = tmp_path / "home"
    first, _ = json_lines(run_cli("scan", "--json", str(tree), home=home).stdout)
    with sqlite3.connect(home / "agent.db") as conn:
        conn.execute("UPDATE verdict_cache SET value = ?", (garbage,))
    proc = run_cli("scan", "--json", str(tree), home=home)
    again, summary = json_lines(proc.stdout)
    assert proc.returncode == 1, proc.stderr.decode()
    assert summary["cached"] == 0
    assert sorted((o["path"], o["verdict"]) for o in again) == sorted(
        (o["path"], o["verdict"]) for o in first
    )
