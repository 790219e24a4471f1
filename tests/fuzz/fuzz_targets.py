"""Fuzz targets: bytes in, the parser's contract checked, an AssertionError (or a stray exception) out.

Each target takes arbitrary bytes and drives one parser the way hostile input reaches it. A target
returns normally when the parser honoured its contract: a result, or only its own error type. Any
other exception is a finding. The hypothesis tests in this directory and the atheris harnesses
(``atheris_*.py``) call the same functions, so a crash found in a long atheris campaign replays here.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import struct
from collections.abc import Callable

import msgspec
import samples
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.classify.extract import TEXT_FORMATS, ExtractLimits, extract_text
from agent.engine.archives import Budget, Member, Skipped, archive_format, members
from agent.engine.hashlists import HashDb, parse_hash_bytes
from agent.engine.limits import ScanLimits
from agent.errors import ExtractError, LimitExceeded, RulesError, ScanError
from agent.sources.clamd.protocol import ClamdProtocolError, Parser, Request, StreamChunk, StreamEnd
from agent.updates import BundleError, BundleLimits, public_key_b64, read_bundle
from agent.updates.bundle import bundle_bytes, manifest_for
from agent.updates.keys import pinned_keys
from cloud.schema import MAX_BATCH, decode_records

__all__ = ["TARGETS", "archives", "bundle", "clamd", "extract", "hashlists", "seeds", "wire"]

EXTRACT_LIMITS = ExtractLimits(max_chars=2_000, max_member_size=1 << 20, max_members=64, max_pdf_pages=8)
SCAN_LIMITS = ScanLimits(
    max_file_size=1 << 20, max_scan_size=4 << 20, max_recursion=4, max_files=200, max_scan_time=10.0
)
BUNDLE_LIMITS = BundleLimits(
    max_bundle_bytes=1 << 20, max_unpacked_bytes=4 << 20, max_member_bytes=1 << 20, max_members=64
)
FORMATS = sorted(TEXT_FORMATS)
RULE_FILES = {
    "yara/a.yar": b'rule A { strings: $a = "fuzz-marker-a" condition: $a }',
    "hashes/b.hsb": b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855:0:Empty.File\n",
    "policy.toml": b"policy_version = 1\n",
}


def clamd(data: bytes) -> None:
    """The clamd parser: the first byte picks a quota, the rest arrives in packets of sizes from ``data``."""
    quota = 1 + (data[0] if data else 0) * 64
    parser = Parser(stream_max_length=quota)
    for packet in _packets(data[1:]):
        parser.receive(packet)
        error = _drain(parser, quota)
        if error is not None:
            assert error.reply.endswith((b"\0", b"\n"))
            assert parser.done
            return
    assert parser.done or parser.next_event() is None


def _drain(parser: Parser, quota: int) -> ClamdProtocolError | None:
    """Take every event the parser has now; return the protocol error that ended it, if any."""
    try:
        while (event := parser.next_event()) is not None:
            assert isinstance(event, Request | StreamChunk | StreamEnd)
            if isinstance(event, StreamEnd):
                assert event.size <= quota
    except ClamdProtocolError as exc:
        return exc
    return None


def _packets(data: bytes) -> list[bytes]:
    """Split ``data`` into packets: each starts with a length byte, the way a peer's writes arrive."""
    out, i = [], 0
    while i < len(data):
        size = 1 + data[i] % 64
        out.append(data[i + 1 : i + 1 + size])
        i += 1 + size
    return out


@functools.cache
def _signed_bundle() -> tuple[bytes, object]:
    key = Ed25519PrivateKey.generate()
    good = bundle_bytes(manifest_for(RULE_FILES, 3, dt.datetime.now(dt.UTC), "0.1.0"), RULE_FILES, key)
    return good, pinned_keys([public_key_b64(key)])


def bundle(data: bytes) -> None:
    """The rule bundle reader: bytes are refused with BundleError, or verify to exactly the signed files."""
    _, keys = _signed_bundle()
    try:
        verified = read_bundle(data, keys, BUNDLE_LIMITS)  # type: ignore[arg-type]
    except BundleError as exc:
        refused = exc
    else:
        assert dict(verified.files) == RULE_FILES
        return
    assert refused.code


def extract(data: bytes) -> None:
    """Every text extractor: the first byte picks the format; a bounded str or ExtractError."""
    if not data:
        return
    fmt = FORMATS[data[0] % len(FORMATS)]
    try:
        text = extract_text(data[1:], fmt, EXTRACT_LIMITS)
    except ExtractError:
        return
    assert isinstance(text, str)
    assert len(text) <= EXTRACT_LIMITS.max_chars
    text.encode("utf-8")


def archives(data: bytes) -> None:
    """The archive walker on any format it recognises: members within limits, or ScanError."""
    fmt = archive_format(data[:512])
    if fmt is None:
        return
    budget = Budget.start(SCAN_LIMITS)
    try:
        for item in members(data, fmt, budget, "fuzz"):
            assert isinstance(item, Member | Skipped)
            if isinstance(item, Member):
                assert len(item.data) <= SCAN_LIMITS.max_file_size
    except (ScanError, LimitExceeded):
        pass
    assert budget.bytes_scanned <= SCAN_LIMITS.max_scan_size + (1 << 20)  # one chunk past, then it stops
    assert budget.files <= SCAN_LIMITS.max_files + 1


def hashlists(data: bytes) -> None:
    """The .hsb/.hdb parsers: entries parsed, or RulesError naming the file."""
    for suffix in (".hsb", ".hdb"):
        db = HashDb()
        try:
            count = parse_hash_bytes(data, suffix, db, "fuzz" + suffix)
        except RulesError as exc:
            message = str(exc)
        else:
            assert count == sum(len(v) for table in db.by_algo.values() for v in table.values())
            continue
        assert message.startswith("fuzz" + suffix)


def wire(data: bytes) -> None:
    """The cloud's wire-schema decoder, JSON and msgpack: records, or a msgspec error."""
    for media in ("json", "msgpack"):
        try:
            records = decode_records(data, media)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        assert len(records) <= MAX_BATCH


_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_ODF = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
_TEXT_SEEDS = {
    "txt": b"Contact: jane.doe@example.com\n",
    "csv": b"name,email\nJane,jane@example.com\n",
    "json": b'{"name": "Jane", "iban": "DE89 3704 0044 0532 0130 00"}',
    "html": b"<html><body><p>Hello &amp; bye</p><script>x()</script></body></html>",
    "xml": b"<?xml version='1.0'?><a><b>text</b></a>",
    "eml": b"From: a@example.com\nTo: b@example.com\nSubject: hi\nContent-Type: text/plain\n\nbody\n",
    "vcf": b"BEGIN:VCARD\nVERSION:3.0\nFN:Jane Roe\nEMAIL:jane@example.com\nEND:VCARD\n",
    "ics": b"BEGIN:VCALENDAR\nBEGIN:VEVENT\nSUMMARY:Meet\nEND:VEVENT\nEND:VCALENDAR\n",
    "rtf": rb"{\rtf1\ansi Hello \b bold\b0 world}",
    "pdf": b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n",
}


def _extract_seeds() -> list[bytes]:
    """One valid object per text format, each prefixed with the byte that selects its format."""
    by_format = dict(_TEXT_SEEDS)
    by_format["docx"] = samples.zip_of(
        {
            "word/document.xml": f'<w:document xmlns:w="{_W}"><w:body><w:p><w:r><w:t>Jane</w:t></w:r></w:p></w:body></w:document>'.encode()
        }
    )
    by_format["odt"] = samples.zip_of(
        {
            "mimetype": b"application/vnd.oasis.opendocument.text",
            "content.xml": f"<o:document-content xmlns:o='{_ODF}'/>".encode(),
        }
    )
    return [bytes([FORMATS.index(fmt)]) + data for fmt, data in by_format.items() if fmt in FORMATS]


def seeds() -> dict[str, list[bytes]]:
    """Valid inputs per target, to start mutation from (hypothesis) or to seed a corpus (atheris)."""
    return {
        "clamd": [
            b"\x10\x0azPING\0\x0cnIDSESSION\n\x0bzINSTREAM\0\x08" + frame(b"abc") + b"\x04" + bytes(4),
            b"\x01\x3fSCAN /tmp/x\n",
        ],
        "bundle": [_signed_bundle()[0]],
        "extract": _extract_seeds(),
        "archives": [
            samples.zip_of({"a.txt": b"hello" * 40, "d/b.bin": bytes(range(256))}),
            samples.tar_of({"x.txt": b"data" * 50}, "w:gz"),
            samples.tar_of({"x.txt": b"data" * 50}, "w:xz"),
            samples.gzip_of(b"payload" * 50),
            samples.nested_zip(b"inner", 3),
        ],
        "hashlists": [
            b"# comment\n"
            + b"a" * 64
            + b":68:Eicar.Sha256\n"
            + b"b" * 40
            + b":*:Sha1.Any\n"
            + b"c" * 32
            + b":10:Md5.Ten:73\n"
        ],
        "wire": [
            json.dumps([samples.wire_record(), samples.wire_record()]).encode(),
            msgspec.msgpack.encode([samples.wire_record()]),
        ],
    }


TARGETS: dict[str, Callable[[bytes], None]] = {
    "archives": archives,
    "bundle": bundle,
    "clamd": clamd,
    "extract": extract,
    "hashlists": hashlists,
    "wire": wire,
}


def frame(payload: bytes) -> bytes:
    """A clamd INSTREAM chunk: a 4-byte network-order length, then the bytes."""
    return struct.pack("!L", len(payload)) + payload
