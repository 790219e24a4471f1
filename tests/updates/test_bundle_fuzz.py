"""Garbage in: the bundle reader raises only BundleError, and accepts only what verifies in full.

The example counts come from the active hypothesis profile (no max_examples here), so a ``deep``
profile registered for long runs applies to these tests too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import io
import random
import tarfile
import zlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.updates import BundleError, BundleLimits, public_key_b64, read_bundle
from agent.updates.bundle import bundle_bytes, manifest_for
from agent.updates.fetch import _minimum_wait
from agent.updates.keys import pinned_keys
from cloud.rules_feed import bundle_version, etag_matches

LIMITS = BundleLimits(
    max_bundle_bytes=1 << 20, max_unpacked_bytes=4 << 20, max_member_bytes=1 << 20, max_members=64
)
FILES = {
    "yara/a.yar": b'rule A { strings: $a = "fuzz-marker-a" condition: $a }',
    "hashes/b.hsb": b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855:0:Empty.File\n",
    "policy.toml": b"policy_version = 1\n",
}
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


KEY = Ed25519PrivateKey.generate()
GOOD = bundle_bytes(manifest_for(FILES, 3, dt.datetime.now(dt.UTC), "0.1.0"), FILES, KEY)
KEYS = pinned_keys([public_key_b64(KEY)])
GOOD_TAR = gzip.decompress(GOOD)


def _read_or_refuse(data: bytes) -> None:
    """Read ``data``; a success must be exactly the signed content, anything else a BundleError."""
    try:
        bundle = read_bundle(data, KEYS, LIMITS)
    except BundleError as exc:
        refused = exc
    else:
        assert dict(bundle.files) == FILES
        assert bundle.manifest.version == 3
        return
    assert refused.code
    assert refused.reason


def _mutate(data: bytes, rnd: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rnd.randint(1, 8)):
        op, pos = rnd.random(), rnd.randrange(len(buf)) if buf else 0
        if op < 0.5 and buf:
            buf[pos] = rnd.randrange(256)
        elif op < 0.75:
            del buf[pos : pos + rnd.randint(1, 600)]
        else:
            buf[pos:pos] = rnd.randbytes(rnd.randint(1, 600))
    return bytes(buf)


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_are_refused(data):
    """Random bytes, with or without a gzip header, raise BundleError."""
    _read_or_refuse(data)
    _read_or_refuse(b"\x1f\x8b\x08\x00" + data)
    _read_or_refuse(gzip.compress(data, mtime=0))


@FUZZ
@given(st.integers(min_value=0, max_value=2**32))
def test_mutated_gzip_raises_only_bundle_errors(seed):
    """Byte mutations of the compressed bundle are refused or leave the verified content unchanged."""
    _read_or_refuse(_mutate(GOOD, random.Random(seed)))


@FUZZ
@given(st.integers(min_value=0, max_value=2**32))
def test_mutated_tar_raises_only_bundle_errors(seed):
    """Mutations of the tar inside a valid gzip stream are refused or change nothing signed."""
    _read_or_refuse(gzip.compress(_mutate(GOOD_TAR, random.Random(seed)), mtime=0))


_NAMES = st.one_of(
    st.sampled_from(
        ["manifest.json", "manifest.sig", "rules/yara/a.yar", "rules/policy.toml", "rules/x.yar"]
    ),
    st.text(min_size=1, max_size=40),
    st.builds(lambda s: "rules/" + s, st.text(min_size=1, max_size=20)),
)
_TYPES = st.sampled_from(
    [
        tarfile.REGTYPE,
        tarfile.SYMTYPE,
        tarfile.LNKTYPE,
        tarfile.DIRTYPE,
        tarfile.CHRTYPE,
        tarfile.FIFOTYPE,
        b"7",
    ]
)


@FUZZ
@given(
    st.lists(st.tuples(_NAMES, _TYPES, st.binary(max_size=200), st.text(max_size=20)), max_size=8),
    st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT]),
    st.booleans(),
)
def test_hostile_members_raise_only_bundle_errors(extra, fmt, keep_good):
    """Arbitrary names, link targets and member types added to (or instead of) a good bundle are refused."""
    raw = io.BytesIO()
    try:
        with tarfile.open(fileobj=raw, mode="w", format=fmt) as tar:
            if keep_good:
                with tarfile.open(fileobj=io.BytesIO(GOOD_TAR)) as good:
                    for info in good.getmembers():
                        tar.addfile(info, good.extractfile(info))
            for name, kind, data, link in extra:
                info = tarfile.TarInfo(name)
                info.type, info.linkname = kind, link
                info.size = len(data) if kind in (tarfile.REGTYPE, b"7") else 0
                tar.addfile(info, io.BytesIO(data) if info.size else None)
    except (ValueError, UnicodeError, tarfile.TarError):
        return  # the writer cannot express this member; nothing to read
    data = zlib.compress(raw.getvalue())  # zlib, not gzip: must be refused as not gzip
    _read_or_refuse(data)
    _read_or_refuse(gzip.compress(raw.getvalue(), mtime=0))


@FUZZ
@given(st.integers(min_value=0, max_value=2**32), st.binary(max_size=512))
def test_cloud_manifest_reader_raises_only_value_error(seed, noise):
    """The cloud's publish-time manifest reader refuses garbage with ValueError and nothing else."""
    for data in (_mutate(GOOD, random.Random(seed)), noise, gzip.compress(noise, mtime=0)):
        with contextlib.suppress(ValueError):
            assert bundle_version(data) >= 1


@FUZZ
@given(st.text(max_size=200), st.text(max_size=80))
def test_header_parsers_never_raise(if_none_match, minimum_wait):
    """If-None-Match matching and Minimum-Wait parsing take any header text."""
    assert isinstance(etag_matches(if_none_match, '"abc"'), bool)
    assert 0.0 <= _minimum_wait(minimum_wait) <= 7 * 86_400.0
