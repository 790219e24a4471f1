"""run_item, in-process: the stages in order, and bad objects turned into clear verdicts."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
import threading
from dataclasses import replace

import pytest
import samples

import agent.session as session_module
from agent.config import bundled_rules_dir
from agent.engine import DEFAULT_LIMITS, Engine, load_rules
from agent.minimize import Identity, Policy
from agent.model import ScanRequest, StatKey, VerdictKind
from agent.pipeline import run_item
from agent.worker import WorkerContext


@pytest.fixture(scope="module")
def ctx():
    rules = load_rules(bundled_rules_dir())
    policy = Policy.load(bundled_rules_dir() / "policy.toml")
    return WorkerContext(rules, DEFAULT_LIMITS, policy, Identity("e" * 32, "test-engine", rules.version))


@pytest.fixture(scope="module")
def engine(ctx):
    return Engine(ctx.rules, ctx.limits)


def _run(path, engine, ctx):
    return run_item(ScanRequest(path=str(path)), engine=engine, ctx=ctx)


def test_clean_text_file(tmp_path, engine, ctx):
    """A plain text file is clean, kind text, non-personal, with no record and a stat key."""
    path = tmp_path / "notes.txt"
    path.write_text("build 42 passed\n")
    outcome = _run(path, engine, ctx)
    assert outcome.verdict.kind is VerdictKind.CLEAN
    assert outcome.classification.kind == "text"
    assert outcome.record is None
    assert outcome.request.stat.size == path.stat().st_size


def test_a_stat_refreshed_at_open_keeps_every_other_field_of_the_request(tmp_path, engine, ctx):
    """A file touched between walk and scan gets its new stat; a report-only request stays report-only."""
    path = tmp_path / "x.com"
    path.write_bytes(samples.eicar())
    stale = StatKey(0, 0, 1, 2, 3)
    request = ScanRequest(path=str(path), stat=stale, display="named", act=False)
    outcome = run_item(request, engine=engine, ctx=ctx)
    assert outcome.request.stat != stale
    assert (outcome.request.act, outcome.request.display) == (False, "named")


def test_fifo_is_never_opened_for_reading(tmp_path, engine, ctx):
    """A FIFO named directly is refused at once (no blocking open, no read)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    done = threading.Event()

    def run():
        outcome = _run(fifo, engine, ctx)
        assert outcome.verdict.reason == "not a regular file"
        done.set()

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(5)
    assert done.is_set()


def test_symlink_at_open_is_refused(tmp_path, engine, ctx):
    """A path that turns out to be a symlink when opened is refused (O_NOFOLLOW), not followed."""
    target = tmp_path / "target.com"
    target.write_bytes(samples.eicar())
    link = tmp_path / "link"
    link.symlink_to(target)
    outcome = _run(link, engine, ctx)
    assert outcome.verdict.kind is VerdictKind.ERROR
    assert outcome.verdict.reason == "is a symbolic link"


def test_vanished_file_is_an_error_with_reason(tmp_path, engine, ctx):
    """A file deleted between the walk and the scan gets a clear error."""
    outcome = _run(tmp_path / "gone.txt", engine, ctx)
    assert outcome.verdict.kind is VerdictKind.ERROR
    assert outcome.verdict.reason == "vanished before it could be scanned"


def test_oversize_file_is_unscanned_but_kind_is_known(tmp_path, ctx):
    """A file over max_file_size is unscanned (MaxFileSize), and its kind comes from its head."""
    limits = replace(DEFAULT_LIMITS, max_file_size=1000)
    small_ctx = replace(ctx, limits=limits)
    path = tmp_path / "big.pdf"
    path.write_bytes(b"%PDF-1.7\n" + b"0" * 5000)
    outcome = run_item(ScanRequest(path=str(path)), engine=Engine(ctx.rules, limits), ctx=small_ctx)
    assert outcome.verdict.kind is VerdictKind.UNSCANNED
    assert [d.name for d in outcome.verdict.detections] == ["Limits.Exceeded.MaxFileSize"]
    assert outcome.classification.kind == "document"
    assert outcome.result.sha256 is None


def test_personal_archive_member_makes_the_archive_personal(tmp_path, engine, ctx):
    """An archive holding a document is personal by default, and personal data in members is counted."""
    path = tmp_path / "a.zip"
    path.write_bytes(
        samples.zip_of({"contacts.csv": b"name,email\nJo,jo@example.org\n", "tool.sh": b"#!/bin/sh\necho\n"})
    )
    outcome = _run(path, engine, ctx)
    assert outcome.classification.kind == "archive"
    assert outcome.classification.data_class.value == "personal"
    assert outcome.classification.personal_data.get("email") == 1


def test_docx_text_is_not_counted_twice(tmp_path, engine, ctx):
    """A docx is extracted as a whole; its XML members are not extracted again."""
    doc = samples.zip_of(
        {
            "[Content_Types].xml": b"<Types/>",
            "word/document.xml": b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>Mail me: max@example.com</w:t></w:r></w:p></w:body></w:document>',
        }
    )
    path = tmp_path / "letter.docx"
    path.write_bytes(doc)
    outcome = _run(path, engine, ctx)
    assert outcome.classification.fmt == "docx"
    assert outcome.classification.personal_data == {"email": 1}


_PERSONAL_TEXT = b"Contact: jane.roe@example.com\nIBAN: DE89 3704 0044 0532 0130 00\n"


def test_a_clean_stream_is_not_searched_for_personal_data(engine, ctx):
    """A clean stream in memory gets its kind only: nothing of it is shown, cached or sent."""
    out = run_item(ScanRequest(path="stream", data=_PERSONAL_TEXT), engine=engine, ctx=ctx)
    assert out.verdict.kind is VerdictKind.CLEAN
    assert out.classification.personal_data == {}
    assert out.record is None
    assert out.request.data is None


def test_a_stream_with_a_detection_is_classified_in_full_and_keeps_its_hash_home(engine, ctx):
    """A detected stream holding personal data is classified fully: personal, and no hash upstream."""
    document = samples.docm(samples.ole_vba("AutoOpen"))
    out = run_item(ScanRequest(path="stream", data=document), engine=engine, ctx=ctx)
    assert out.verdict.kind in (VerdictKind.MALICIOUS, VerdictKind.SUSPICIOUS)
    assert out.classification.data_class.value == "personal"
    assert out.record is not None and out.record.sha256 is None
    mixed = samples.zip_of({"notes.txt": _PERSONAL_TEXT, "x.com": samples.eicar()})
    out = run_item(ScanRequest(path="stream", data=mixed), engine=engine, ctx=ctx)
    assert out.classification.personal_data  # the detectors ran on the second pass
    assert out.record is not None and out.record.sha256 is None


def test_a_worker_imports_neither_the_logger_nor_the_terminal_ui():
    """A scan worker loads the pipeline only: structlog, rich and asyncio would cost each worker ~6 MiB.

    pypdf, with the cryptography it loads (~19 MiB), waits for the first PDF.
    """
    probe = (
        "import sys, agent.worker, agent.pipeline\n"
        "print(sorted(m for m in ('structlog', 'rich', 'asyncio', 'httpx', 'pypdf') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_scan_parent_does_not_load_the_update_client(tmp_path):
    """Finding the rules in force reads a link: it loads neither the bundle verifier nor httpx.

    Nor importlib.metadata, whose import and search cost ~10 ms of every start (the engine version
    reads yara-x's release from its dist-info directory).
    """
    probe = (
        "import sys, agent.cli, agent.session\n"
        "from agent import config\n"
        "config.load().rules_dir\n"
        "modules = ('httpx', 'agent.updates.fetch', 'agent.updates.bundle', 'importlib.metadata')\n"
        "print(sorted(m for m in modules if m in sys.modules))"
    )
    env = {**os.environ, "ENDPOINT_AGENT_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "[]", out.stdout


def test_a_file_over_the_size_limit_weighs_nothing_in_the_pool():
    """Such a file is only peeked at, so it must not hold back the files behind it under the budget."""
    big = ScanRequest(path="/x", stat=StatKey(1, 2, 500 << 20, 3, 4))
    small = ScanRequest(path="/y", stat=StatKey(1, 3, 4096, 3, 4))
    stream = ScanRequest(path="stream", data=b"z" * 1000)
    weigh = functools.partial(session_module._request_weight, max_file_size=100 << 20)
    assert [weigh(big), weigh(small), weigh(stream)] == [0, 4096, 1000]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the retention it prevents is glibc's")
@pytest.mark.parametrize("fixed", [True, False])
def test_a_worker_gives_back_the_memory_of_a_file_it_read_whole(fixed):
    """Files up to 16 MiB are read into memory; after the scan that memory must not stay the worker's."""
    probe = (
        "from agent.engine import sandbox\n"
        f"if {fixed}: sandbox.return_large_buffers()\n"
        "def anon():\n"
        "    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('RssAnon'))\n"
        "before = anon()\n"
        "for _ in range(3):\n"
        "    data = bytes(16 << 20); data = None\n"
        "    data = b'x' * (16 << 20); data = None\n"
        "print((anon() - before) // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    retained = int(out.stdout)
    if fixed:
        assert retained < 4, f"{retained} MiB kept after the buffers were freed"
    else:  # the control: without the setting glibc keeps a freed 16 MiB block in the heap
        assert retained >= 8
