"""No path, file name, user name, content or personal value reaches a log line or an upstream record.

Canary strings are planted in directory names (user-like), file names and file contents, including
in files that produce detections and records. Every byte the scan writes to its log stream, every
upstream record (JSON output, receipt, outbox) and the raw SQLite files are searched for them, in
plain, hex, URL-encoded and base64 forms.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3

import canary
import pytest
import samples
from conftest import json_lines, run_cli


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    values = {k: canary.make(k) for k in ("user", "dir", "file", "body", "mail", "name")}
    root = tmp_path_factory.mktemp("scan")
    user_dir = root / "home" / values["user"] / f"Documents-{values['dir']}"
    user_dir.mkdir(parents=True)
    personal = (
        f"Customer: Jane {values['name'].title()}\n"
        f"Email: {values['mail'].lower()}@example.com\n"
        f"IBAN: DE89 3704 0044 0532 0130 00\n"
        f"Notes: {values['body']}\n"
    ).encode()
    files = {
        f"{values['file']}-letter.txt": personal,
        f"{values['file']}-eicar.com": samples.eicar(),
        f"{values['file']}-macro.docm": samples.docm(samples.ole_vba("AutoOpen")),
        f"{values['file']}-nested.zip": samples.zip_of(
            {f"{values['file']}-inner/{values['body']}.com": samples.eicar(), "letter.txt": personal}
        ),
        f"{values['file']}-deep.zip": samples.nested_zip(samples.eicar(), 20, name=f"{values['file']}.com"),
        f"{values['file']}-dropper.sh": samples.shell_dropper() + f"# {values['body']}\n".encode(),
    }
    for name, data in files.items():
        (user_dir / name).write_bytes(data)
    home = tmp_path_factory.mktemp("agent")
    (home / "agent.toml").write_text('[log]\nlevel = "debug"\nformat = "json"\n')
    proc = run_cli("scan", "--json", "--receipt", str(root), home=home)
    personal_hashes = [
        hashlib.sha256(personal).hexdigest(),
        hashlib.sha256(files[f"{values['file']}-nested.zip"]).hexdigest(),
        hashlib.sha256(files[f"{values['file']}-macro.docm"]).hexdigest(),
    ]
    return values, proc, home, personal_hashes


def test_scan_found_what_was_planted(planted):
    """The planted files really were scanned and produced detections and records."""
    _, proc, _, _ = planted
    objects, summary = json_lines(proc.stdout)
    assert proc.returncode == 1
    assert summary["records"] >= 4
    assert any(o["data_class"] == "personal" and o["personal_data"] for o in objects)


def test_no_canary_in_the_log_stream(planted):
    """Debug-level JSON logs hold no canary in any form."""
    values, proc, _, _ = planted
    assert proc.stderr.count(b"scan_finished") >= 6
    assert canary.find(proc.stderr, list(values.values())) == []


def test_no_canary_in_upstream_records(planted):
    """The records shown in --json and in the receipt hold no canary and no hash of a personal file."""
    values, proc, _, personal_hashes = planted
    objects, summary = json_lines(proc.stdout)
    upstream = json.dumps([o["upstream"] for o in objects] + [summary["receipt"]]).encode()
    assert canary.find(upstream, list(values.values())) == []
    assert not [h for h in personal_hashes if h.encode() in upstream]


def test_no_canary_in_the_local_store(planted):
    """The SQLite store (database and WAL) holds no path, name or content: nothing to leak later."""
    values, _, home, personal_hashes = planted
    blob = b"".join(p.read_bytes() for p in home.iterdir() if p.name.startswith("agent.db"))
    assert canary.find(blob, list(values.values())) == []
    with sqlite3.connect(home / "agent.db") as conn:
        outbox = b"".join(row[0] for row in conn.execute("SELECT body FROM outbox"))
    assert outbox
    assert not [h for h in personal_hashes if h.encode() in outbox]
