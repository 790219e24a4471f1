"""The hostile corpus through the real command line in one run, and real formats under the sandbox.

Every case states its expected verdict (see ``hostile_corpus.cases``); the run also holds ordinary
files whose verdicts must not change, which shows that no case breaks the scan of the others.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
import zipfile

import hostile_corpus
import pytest
import samples
import sandbox_helpers
from conftest import ROOT, json_lines, run_cli

from agent.config import bundled_rules_dir
from agent.engine import DEFAULT_LIMITS, WorkerPool, load_rules
from agent.minimize import Identity, Policy
from agent.model import ScanRequest, VerdictKind
from agent.worker import WorkerContext

MIB = 1 << 20


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The whole hostile corpus and the controls under one root; the long path is returned apart."""
    root = tmp_path_factory.mktemp("hostile")
    outside = tmp_path_factory.mktemp("outside") / "target.com"
    cases = hostile_corpus.build(root, outside)
    hostile_corpus.build_controls(root)
    long_name = hostile_corpus.long_path(root)
    return root, cases, long_name


@pytest.fixture(scope="module")
def scanned(corpus, tmp_path_factory):
    """One ``scan --json`` run over the corpus, with one file growing while it runs."""
    root, _, _ = corpus
    with hostile_corpus.growing(root / "growing.log"):
        proc = run_cli("scan", "--json", str(root), home=tmp_path_factory.mktemp("home"), timeout=300)
    objects, summary = json_lines(proc.stdout)
    return proc, {os.path.relpath(o["path"], root): o for o in objects}, summary


@pytest.mark.slow
def test_every_case_gets_its_expected_verdict(corpus, scanned):
    """Each hostile case gets the verdict its table row states; none is clean unless nothing can hide."""
    _, cases, _ = corpus
    _, by_path, _ = scanned
    problems = {c.path: c.check(by_path[c.path]) for c in cases}
    assert {k: v for k, v in problems.items() if v} == {}


@pytest.mark.slow
def test_controls_are_unaffected_and_the_run_completes(corpus, scanned):
    """The ordinary files keep their verdicts, every object has a line, and the exit code says 'found'."""
    _, cases, _ = corpus
    proc, by_path, summary = scanned
    assert {p: by_path[p]["verdict"] for p in hostile_corpus.CONTROLS} == hostile_corpus.CONTROLS
    assert summary["files"] == len(cases) + len(hostile_corpus.CONTROLS) + 1
    assert proc.returncode == 1, proc.stderr.decode()[-2000:]


@pytest.mark.slow
def test_links_in_a_tar_are_never_followed(scanned):
    """The tar's links point at an EICAR file outside; it is clean with no member detections."""
    _, by_path, _ = scanned
    assert by_path["links.tar"]["detections"] == []


@pytest.mark.slow
def test_billion_laughs_is_refused_not_expanded(scanned):
    """The docx's entities are refused outright: no text, so the e-mail after them is never counted."""
    _, by_path, _ = scanned
    line = by_path["laughs.docx"]
    assert line["personal_data"] == {}
    assert any("entity" in note for note in line["notes"])


@pytest.mark.slow
def test_sparse_file_is_stopped_by_size_not_read(scanned):
    """The 100 GB sparse file is unscanned by MaxFileSize in well under the time to read it."""
    _, by_path, _ = scanned
    line = by_path["sparse-100g.bin"]
    assert [d["name"] for d in line["detections"]] == ["Limits.Exceeded.MaxFileSize"]
    assert line["duration_ms"] < 60_000  # a hang guard: reading 100 GB would take minutes


@pytest.mark.slow
def test_path_over_path_max_is_an_error_with_its_reason(corpus, scanned):
    """A file whose path is over 4,096 bytes cannot be opened by path: an error saying so, not a crash."""
    _, _, long_name = corpus
    _, by_path, _ = scanned
    on_the_way = [p for p in by_path if long_name.startswith(p)]  # the walk stops where PATH_MAX is crossed
    assert len(on_the_way) == 1
    assert by_path[on_the_way[0]]["verdict"] == "error"
    assert by_path[on_the_way[0]]["reason"] == "file name too long"


@pytest.mark.slow
def test_json_lines_carry_escaped_names_only(corpus, scanned):
    """No raw newline or escape from a file name reaches the JSON output: one object per line."""
    proc, by_path, _ = scanned
    assert b"\x1b" not in proc.stdout
    assert hostile_corpus.ESCAPE_NAME in by_path  # decoded back from the escaped JSON string


def test_console_output_on_a_terminal_shows_names_inert(tmp_path):
    """On a real terminal (a pty), a name's newline, clear-screen and title sequences are shown escaped."""
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / hostile_corpus.ESCAPE_NAME).write_bytes(samples.eicar())
    output = _run_on_pty(["scan", str(tmp_path / "t")], home=tmp_path / "h")
    assert b"\x1b[2J" not in output
    assert b"\x1b]0;pwned" not in output
    assert b"\x07" not in output
    assert b"evil\\x0a\\x1b[2J\\x1b]0;pwned\\x07name.com" in output


def _run_on_pty(args: list[str], home) -> bytes:
    """Run the CLI with stdout and stderr on a pseudo-terminal; return everything it wrote there."""
    leader, follower = pty.openpty()
    env = {**os.environ, "ENDPOINT_AGENT_HOME": str(home), "TERM": "xterm", "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        cwd=ROOT,
        env=env,
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if select.select([leader], [], [], 0.5)[0]:
                try:
                    data = os.read(leader, 65536)
                except OSError:  # EIO: the other side closed
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
    finally:
        os.close(leader)
        proc.wait(timeout=30)
    return b"".join(chunks)


# ---------------------------------------------------------------- real formats under the sandbox


@pytest.fixture(scope="module")
def ctx():
    rules = load_rules(bundled_rules_dir())
    policy = Policy.load(bundled_rules_dir() / "policy.toml")
    return WorkerContext(rules, DEFAULT_LIMITS, policy, Identity("e" * 32, "test-engine", rules.version))


def _formats(root):
    """Real objects of every family the pipeline handles, big ones included (> 16 MiB: the mapped path)."""
    big_tail = os.urandom(20 * MIB) + samples.powershell_cradle()
    files = {
        "eicar.com": samples.eicar(),
        "deep.zip": samples.nested_zip(samples.eicar(), 4),
        "eicar.tar.gz": samples.tar_of({"x/eicar.com": samples.eicar()}, "w:gz"),
        "macro.docm": samples.docm(samples.ole_vba("AutoOpen")),
        "letter.pdf": hostile_corpus.text_pdf(f"Contact {hostile_corpus.EMAIL}"),
        "letter.docx": hostile_corpus.text_docx(f"Contact {hostile_corpus.EMAIL}"),
        "big-tail.bin": big_tail,
        "big-clean.log": b"an ordinary log line\n" * (1 << 20),
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    return [ScanRequest(path=str(root / name)) for name in files]


def test_real_formats_scan_correctly_in_a_confined_worker(tmp_path, ctx):
    """Under the sandbox the real worker still finds EICAR in files, archives and big files, and reads documents."""
    requests = _formats(tmp_path)
    with WorkerPool(1, sandbox_helpers.setup_real, ctx, 120.0) as pool:
        results = dict(pool.map_unordered([ScanRequest(path="?status"), *requests]))
    status = results.pop(ScanRequest(path="?status"))
    assert status["no_new_privs"] == "1"
    assert status["limits"]["RLIMIT_FSIZE"] == (0, 0)
    by_name = {os.path.basename(r.path): o for r, o in results.items()}
    kinds = {name: o.verdict.kind for name, o in by_name.items()}
    malicious = {"eicar.com", "deep.zip", "eicar.tar.gz", "big-tail.bin"}
    assert {n for n, k in kinds.items() if k is VerdictKind.MALICIOUS} == malicious
    assert kinds["macro.docm"] is VerdictKind.SUSPICIOUS
    assert kinds["letter.pdf"] is kinds["letter.docx"] is kinds["big-clean.log"] is VerdictKind.CLEAN
    assert by_name["letter.pdf"].classification.personal_data.get("email") == 1
    assert by_name["letter.docx"].classification.personal_data.get("email") == 1
    assert by_name["big-tail.bin"].result.sha256 is not None


def test_big_zip_members_are_scanned_in_a_confined_worker(tmp_path, ctx):
    """A stored zip over 16 MiB (the mapped path) has its EICAR member found."""
    big = tmp_path / "big.zip"
    big.write_bytes(
        samples.zip_of({"noise.bin": os.urandom(18 * MIB), "eicar.com": samples.eicar()}, zipfile.ZIP_STORED)
    )
    with WorkerPool(1, sandbox_helpers.setup_real, ctx, 120.0) as pool:
        [(_, outcome)] = list(pool.map_unordered([ScanRequest(path=str(big))]))
    assert outcome.verdict.kind is VerdictKind.MALICIOUS, outcome.verdict.reason
