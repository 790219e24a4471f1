"""Structure-aware properties: valid inputs round-trip, hostile-but-well-formed inputs are refused.

Random bytes rarely get past a parser's first check; these build inputs that do (well-formed hash
lists, archives with generated member trees, validly signed bundles with hostile paths, records at
the schema's edges, XML with entity declarations) and check what comes out.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import tarfile
import zipfile

import fuzz_targets
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fuzz_profile import FUZZ
from hypothesis import assume, given
from hypothesis import strategies as st

from agent.classify.extract import ExtractLimits, extract_text
from agent.engine.archives import Budget, Member, members
from agent.engine.hashlists import HashDb, parse_hash_bytes
from agent.errors import ExtractError, RulesError
from agent.updates import BundleError, public_key_b64, read_bundle
from agent.updates.bundle import bundle_bytes, manifest_for
from agent.updates.keys import pinned_keys
from cloud.schema import MAX_BATCH, decode_records, encode_record

# ---------------------------------------------------------------- .hsb / .hdb

hexdigits = st.sampled_from("0123456789abcdefABCDEF")
names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,40}", fullmatch=True)


@st.composite
def hash_entries(draw):
    algo_len = draw(st.sampled_from([32, 40, 64]))
    digest = "".join(draw(st.lists(hexdigits, min_size=algo_len, max_size=algo_len)))
    size = draw(st.one_of(st.just("*"), st.integers(0, 2**40).map(str)))
    return digest, size, draw(names)


@FUZZ
@given(st.lists(hash_entries(), min_size=1, max_size=30), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_well_formed_hash_lists_load_every_entry(entries, newline, comments):
    """Every well-formed line is loaded and found again by its digest and size."""
    lines = [f"{d}:{s}:{n}" for d, s, n in entries]
    if comments:
        lines = [x for line in lines for x in ("# note", "", line)]
    data = newline.join(lines).encode()
    suffix = ".hdb" if all(len(d) == 32 for d, _, _ in entries) else ".hsb"
    db = HashDb()
    try:
        count = parse_hash_bytes(data, suffix, db, "t" + suffix)
    except RulesError:
        refused = True
    else:
        refused = False
    md5_in_hsb = suffix == ".hsb" and any(len(d) == 32 for d, _, _ in entries)  # md5 belongs in .hdb only
    assert refused == md5_in_hsb
    if refused:
        return
    assert count == len(entries)
    algos = {32: "md5", 40: "sha1", 64: "sha256"}
    for digest, size, name in entries:
        at = 7 if size == "*" else int(size)
        assert name in db.lookup(algos[len(digest)], digest.lower(), at)


@FUZZ
@given(
    hash_entries(),
    st.integers(1, 3),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20),
)
def test_a_broken_line_names_its_line_number(entry, lineno, junk):
    """A bad line among good ones is refused with the file and that line's number."""
    digest, size, name = entry
    good = f"{'a' * 64}:1:Good"
    lines = [good] * (lineno - 1) + [f"{digest}:{size}:{name}:{junk}:extra"]
    with pytest.raises(RulesError, match=rf"^t\.hsb:{lineno}: "):
        parse_hash_bytes("\n".join(lines).encode(), ".hsb", HashDb(), "t.hsb")


def test_a_size_with_thousands_of_digits_is_a_rules_error():
    """A size field too long for int() is refused as a RulesError naming the line, like any bad size."""
    line = b"d41d8cd98f00b204e9800998ecf8427e:" + b"1" * 5000 + b":Name"
    with pytest.raises(RulesError):
        parse_hash_bytes(line, ".hdb", HashDb(), "t.hdb")


# ---------------------------------------------------------------- the archive walker

member_names = st.from_regex(r"[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}\.(txt|bin)", fullmatch=True)
member_sets = st.dictionaries(member_names, st.binary(max_size=2048), min_size=1, max_size=12)


def _tar(files: dict[str, bytes], mode: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:  # type: ignore[call-overload]
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(files: dict[str, bytes], method: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


@FUZZ
@given(
    member_sets,
    st.sampled_from(["zip-deflate", "zip-stored", "zip-bzip2", "zip-lzma", "tar", "tar.gz", "tar.xz"]),
)
def test_archives_yield_exactly_their_members(files, kind):
    """Within the limits, the walker yields every member once, with its exact bytes, for every format."""
    methods = {
        "zip-deflate": zipfile.ZIP_DEFLATED,
        "zip-stored": zipfile.ZIP_STORED,
        "zip-bzip2": zipfile.ZIP_BZIP2,
        "zip-lzma": zipfile.ZIP_LZMA,
    }
    if kind in methods:
        data, fmt = _zip(files, methods[kind]), "zip"
    else:
        data = _tar(files, {"tar": "w", "tar.gz": "w:gz", "tar.xz": "w:xz"}[kind])
        fmt = {"tar": "tar", "tar.gz": "gzip", "tar.xz": "xz"}[kind]
    found = list(members(data, fmt, Budget.start(fuzz_targets.SCAN_LIMITS), "a." + kind))
    if fmt in ("gzip", "xz"):  # one stream member: the tar inside, walked one level down by the engine
        [inner] = found
        assert isinstance(inner, Member)
        found = list(members(inner.data, "tar", Budget.start(fuzz_targets.SCAN_LIMITS), "a.tar"))
    assert {m.name: m.data for m in found if isinstance(m, Member)} == files


# ---------------------------------------------------------------- signed bundles with hostile content

KEY = Ed25519PrivateKey.generate()
KEYS = pinned_keys([public_key_b64(KEY)])
hostile_paths = st.one_of(
    st.sampled_from(
        [
            "../x.yar",
            "/etc/x.yar",
            "a/../../x.yar",
            "./x.yar",
            "a//b.yar",
            "a/./b.yar",
            "x.yar\0.txt",
            "\\..\\x.yar",
            "C:/x.yar",
            "a/b/",
            "",
            ".",
            "..",
            "x.yar/",
            "~/x.yar",
        ]
    ),
    st.text(min_size=1, max_size=30).map(lambda s: s + ".yar"),
)


@FUZZ
@given(st.lists(hostile_paths, min_size=1, max_size=4, unique=True))
def test_signed_bundles_with_hostile_paths_never_yield_unsafe_files(paths):
    """A bundle signed by the pinned key is still refused, or yields only safe relative rule paths."""
    files = {
        "yara/a.yar": b"rule A { condition: true }",
        **dict.fromkeys(paths, b"rule B { condition: false }"),
    }
    try:
        data = bundle_bytes(manifest_for(files, 5, dt.datetime.now(dt.UTC), "0.1.0"), files, KEY)
    except (ValueError, UnicodeError, tarfile.TarError):
        return  # the vendor-side writer cannot express this name
    try:
        verified = read_bundle(data, KEYS, fuzz_targets.BUNDLE_LIMITS)
    except BundleError as exc:
        refused: BundleError | None = exc
    else:
        refused = None
    if refused is not None:
        assert refused.code
        return
    for path in verified.files:  # a backslash may stay in a POSIX name, but never as a way out
        parts = path.replace("\\", "/").split("/")
        assert not path.startswith(("/", "\\")) and ":" not in parts[0] and "\0" not in path
        assert ".." not in parts and "." not in parts
        assert "" not in path.split("/")


# ---------------------------------------------------------------- the wire schema, as the cloud decodes it

EPOCH = dt.datetime(2000, 1, 1)  # noqa: DTZ001 - hypothesis takes naive bounds
hex32 = st.text("0123456789abcdef", min_size=32, max_size=32)
records = st.fixed_dictionaries(
    {
        "schema": st.just(1),
        "record_id": hex32,
        "purpose": st.just("protection"),
        "pseudonym": hex32,
        "time_bucket": st.datetimes(min_value=dt.datetime(2000, 1, 1)).map(  # noqa: DTZ001 - hypothesis bounds are naive
            lambda t: t.strftime("%Y-%m-%dT%H:00Z")
        ),
        "verdict": st.sampled_from(["malicious", "suspicious", "unscanned"]),
        "detections": st.lists(
            st.fixed_dictionaries(
                {
                    "name": st.from_regex(r"[A-Za-z][A-Za-z0-9_.\-]{0,30}", fullmatch=True),
                    "source": st.sampled_from(["yara", "hash", "limit", "reputation"]),
                }
            ),
            max_size=4,
        ),
        "engine_version": st.just("endpoint-agent-engine/1 yara-x/1.0"),
        "rules_version": st.text("0123456789abcdef", min_size=16, max_size=16),
    }
)


@FUZZ
@given(st.lists(records, max_size=5), st.sampled_from(["json", "msgpack"]))
def test_records_round_trip_or_are_refused_whole(batch, media):
    """A batch decodes to records that encode back to the same values, or is refused with a msgspec error."""
    data = json.dumps(batch).encode() if media == "json" else msgspec.msgpack.encode(batch)
    try:
        decoded = decode_records(data, media)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return
    assert len(decoded) == len(batch)
    for record, sent in zip(decoded, batch, strict=True):
        encoded = json.loads(encode_record(record))
        assert {k: encoded[k] for k in sent} == sent
        assert decode_records(encode_record(record).join([b"[", b"]"]), "json") == [record]


@FUZZ
@given(records, st.text(min_size=1, max_size=12))
def test_an_unknown_field_refuses_the_record(record, extra):
    """The cloud refuses a record with any field outside the schema."""
    assume(extra not in record)
    with pytest.raises(msgspec.ValidationError):
        decode_records(json.dumps([{**record, extra: 1}]).encode(), "json")


def test_a_batch_over_the_maximum_is_refused():
    """One record more than MAX_BATCH is refused in both media."""
    record = json.loads(
        json.dumps(
            fuzz_targets.RULE_FILES
            and {
                "schema": 1,
                "record_id": "a" * 32,
                "purpose": "protection",
                "pseudonym": "b" * 32,
                "time_bucket": "2026-11-29T15:00Z",
                "verdict": "unscanned",
                "detections": [],
                "engine_version": "endpoint-agent-engine/1 yara-x/1.0",
                "rules_version": "c" * 16,
            }
        )
    )
    batch = [record] * (MAX_BATCH + 1)
    for media, data in (("json", json.dumps(batch).encode()), ("msgpack", msgspec.msgpack.encode(batch))):
        with pytest.raises(msgspec.ValidationError):
            decode_records(data, media)


# ---------------------------------------------------------------- no XML entity is ever expanded

entity_values = st.text(alphabet=st.characters(codec="utf-8", blacklist_characters='"&%<'), max_size=20)


@FUZZ
@given(
    st.sampled_from(["xml", "docx", "xlsx", "odt"]),
    entity_values,
    st.sampled_from(["SYSTEM", "internal", "param"]),
)
def test_any_entity_declaration_is_refused(fmt, value, kind):
    """Whatever an entity declares (text, a SYSTEM file, a parameter entity), the XML is refused, not expanded."""
    decl = {
        "internal": f'<!ENTITY e "{value}">',
        "SYSTEM": '<!ENTITY e SYSTEM "file:///etc/hostname">',
        "param": f'<!ENTITY % p "{value}"> %p;',
    }[kind]
    body = f'<?xml version="1.0"?><!DOCTYPE r [{decl}]><r><t>&e;</t></r>'
    if fmt == "xml":
        data = body.encode()
    else:
        part = {"docx": "word/document.xml", "xlsx": "xl/sharedStrings.xml", "odt": "content.xml"}[fmt]
        extra = {"odt": {"mimetype": b"application/vnd.oasis.opendocument.text"}}.get(fmt, {})
        data = _zip({**extra, part: body.encode()}, zipfile.ZIP_DEFLATED)
    try:
        text = extract_text(data, fmt, ExtractLimits(max_chars=2_000))
    except ExtractError:
        return
    assert value not in text or not value.strip()  # a format that skips the part gives no entity text
