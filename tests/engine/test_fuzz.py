"""Garbage in: the archive walker, the hash-list parser and the type sniffer raise only their own errors."""

from __future__ import annotations

import contextlib
import random
from dataclasses import replace

import samples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.classify.kinds import sniff
from agent.engine import DEFAULT_LIMITS, HashDb, parse_hash_list
from agent.engine.archives import Budget, Member, Skipped, archive_format, members
from agent.errors import LimitExceeded, RulesError, ScanError

SMALL = replace(
    DEFAULT_LIMITS, max_file_size=1 << 20, max_scan_size=4 << 20, max_files=200, max_scan_time=5.0
)
SEEDS = [
    samples.zip_of({"a.txt": b"hello" * 50, "b/c.bin": bytes(range(256))}),
    samples.tar_of({"x.txt": b"data" * 100}, "w:gz"),
    samples.tar_of({"x.txt": b"data" * 100}, "w:bz2"),
    samples.tar_of({"x.txt": b"data" * 100}, "w:xz"),
    samples.tar_of({"x.txt": b"data" * 100}),
    samples.gzip_of(b"payload" * 100),
    samples.docm(samples.ole_vba()),
]


def _walk(data: bytes) -> list[Member | Skipped]:
    fmt = archive_format(data[:512])
    if fmt is None:
        return []
    return list(members(data, fmt, Budget.start(SMALL), "x"))


def _mutate(data: bytes, rnd: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rnd.randint(1, 12)):
        op = rnd.random()
        pos = rnd.randrange(len(buf)) if buf else 0
        if op < 0.5 and buf:
            buf[pos] = rnd.randrange(256)
        elif op < 0.75:
            del buf[pos : pos + rnd.randint(1, 64)]
        else:
            buf[pos:pos] = rnd.randbytes(rnd.randint(1, 64))
    return bytes(buf)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(SEEDS))), st.integers(min_value=0, max_value=2**32))
def test_mutated_archives_raise_only_scan_errors(seed_index, seed):
    """A mutated archive yields members or raises ScanError/LimitExceeded, nothing else."""
    data = _mutate(SEEDS[seed_index], random.Random(seed))
    try:
        found = _walk(data)
    except (ScanError, LimitExceeded):
        return
    assert all(isinstance(m, Member | Skipped) for m in found)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096), st.sampled_from(["zip", "tar", "gzip", "bzip2", "xz"]))
def test_garbage_with_any_format_raises_only_scan_errors(data, fmt):
    """Arbitrary bytes handed to any walker raise only ScanError or LimitExceeded."""
    with contextlib.suppress(ScanError, LimitExceeded):
        list(members(data, fmt, Budget.start(SMALL), "x"))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=9000), st.text(max_size=40))
def test_sniff_never_raises(head, name):
    """The type sniffer classifies any bytes and any name without raising."""
    ftype = sniff(head, name)
    assert ftype.kind.value in {"executable", "script", "document", "archive", "image", "text", "other"}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=120), max_size=8), st.sampled_from([".hsb", ".hdb"]))
def test_hash_list_garbage_raises_only_rules_errors(tmp_path_factory, lines, suffix):
    """Any text in a hash list parses or raises RulesError naming the file."""
    path = tmp_path_factory.mktemp("h") / f"list{suffix}"
    path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
    try:
        parse_hash_list(path, HashDb(), f"list{suffix}")
    except RulesError as exc:
        message = str(exc)
    else:
        return
    assert f"list{suffix}" in message
