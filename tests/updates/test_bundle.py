"""Rule bundles: build and verify round trip, key rotation, and every way the reader refuses a bundle."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.errors import ConfigError, RulesError
from agent.updates import BundleError, BundleLimits, build, generate_key, public_key_b64, read_bundle, verify
from agent.updates.bundle import DEFAULT_LIMITS, sign
from agent.updates.keys import pinned_keys
from agent.updates.manifest import FileEntry, Manifest, encode_manifest

pytest_plugins = ["update_fixtures"]


def _refused(data, keys, limits=DEFAULT_LIMITS) -> BundleError:
    with pytest.raises(BundleError) as caught:
        read_bundle(data, pinned_keys(keys), limits)
    return caught.value


def _special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def test_build_then_verify_round_trip(forge, tmp_path):
    """A bundle built from a rules directory verifies and lists every file with its hash and size."""
    src = tmp_path / "src"
    (src / "yara").mkdir(parents=True)
    (src / "yara" / "one.yar").write_bytes(b'rule One { strings: $a = "one-marker" condition: $a }')
    (src / "bad.hdb").write_bytes(b"44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature\n")
    (src / "README.md").write_text("not bundled")
    (src / ".git").mkdir()
    (src / ".git" / "x.yar").write_text("hidden, not bundled")
    out = tmp_path / "out.tar.gz"
    built = build(src, tmp_path / "vendor" / "signing.pem", out, 7)
    manifest = verify(out, [forge.public])
    assert manifest == built
    assert manifest.version == 7
    assert [(f.path, f.size) for f in manifest.files] == [("bad.hdb", 57), ("yara/one.yar", 53)]
    one = (src / "yara" / "one.yar").read_bytes()
    assert manifest.files[1].sha256 == hashlib.sha256(one).hexdigest()
    assert read_bundle(out.read_bytes(), pinned_keys([forge.public])).files["yara/one.yar"] == one


def test_build_refuses_rules_that_do_not_compile(forge, tmp_path):
    """The vendor cannot build a bundle whose rules would fail on every agent."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "broken.yar").write_text("rule Broken { condition: nope }")
    with pytest.raises(BundleError) as caught:
        build(src, tmp_path / "vendor" / "signing.pem", tmp_path / "b.tar.gz", 1)
    assert caught.value.code == "compile_error"
    assert "broken.yar" in caught.value.reason
    assert not (tmp_path / "b.tar.gz").exists()


def test_build_refuses_a_symlink_in_the_source(forge, tmp_path):
    """A link in the rules directory is an error, never followed into the bundle."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.yar").write_text("rule Ok { condition: false }")
    (src / "link.yar").symlink_to(src / "ok.yar")
    with pytest.raises(RulesError, match="is a link"):
        build(src, tmp_path / "vendor" / "signing.pem", tmp_path / "b.tar.gz", 1)


def test_keygen_never_overwrites_and_keys_must_be_private(tmp_path):
    """A second keygen on the same file fails, and a key readable by others is refused."""
    path = tmp_path / "k.pem"
    generate_key(path)
    with pytest.raises(ConfigError, match="never overwritten"):
        generate_key(path)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        build(tmp_path, path, tmp_path / "b.tar.gz", 1)


def test_two_pinned_keys_accept_either_signer(forge):
    """During rotation, bundles signed by the old or the new key both verify; a third key does not."""
    old, new, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    pins = [public_key_b64(old), public_key_b64(new)]
    assert verify(forge.bundle(1, key=old), pins).version == 1
    assert verify(forge.bundle(2, key=new), pins).version == 2
    assert _refused(forge.bundle(3, key=other), pins).code == "unknown_key"
    assert _refused(forge.bundle(4, key=old), pins[1:]).code == "unknown_key"


def test_a_bad_pinned_key_is_a_config_error(forge):
    """A pinned key that is not base64 of 32 bytes is a configuration error naming its position."""
    with pytest.raises(ConfigError, match="#2"):
        verify(forge.bundle(), [forge.public, "bm90IGEga2V5"])


def _tampered(forge, case):
    members = forge.members()
    manifest_bytes = members[0][1]
    other_key = Ed25519PrivateKey.generate()
    cases = {
        "extra": lambda: [*members, ("rules/yara/extra.yar", b"rule Extra { condition: true }")],
        "extra_top": lambda: [*members, ("README", b"hello")],
        "missing": lambda: members[:-1],
        "no_manifest": lambda: members[1:],
        "no_signature": lambda: [members[0], *members[2:]],
        "dotdot": lambda: [*members, ("rules/../../etc/evil.yar", b"x")],
        "absolute": lambda: [*members, ("/etc/cron.d/evil", b"x")],
        "backslash_absolute": lambda: [*members, ("\\evil.yar", b"x")],
        "hidden": lambda: [*members, ("rules/.hidden.yar", b"x")],
        "duplicate": lambda: [*members, members[-1]],
        "hash": lambda: [*members[:-1], (members[-1][0], bytes(len(members[-1][1])))],
        "size": lambda: [*members[:-1], (members[-1][0], members[-1][1] + b"\n")],
        "bad_signature": lambda: [
            (members[0][0], manifest_bytes.replace(b'"version":1', b'"version":9')),
            *members[1:],
        ],
        "unknown_key": lambda: [members[0], ("manifest.sig", sign(other_key, manifest_bytes)), *members[2:]],
        "garbage_signature": lambda: [members[0], ("manifest.sig", b"{not json"), *members[2:]],
    }
    return forge.pack(cases[case]())


@pytest.mark.parametrize(
    ("case", "code", "words"),
    [
        ("extra", "extra_file", "not in the manifest"),
        ("extra_top", "extra_file", "not in the manifest"),
        ("missing", "missing_file", "not the bundle"),
        ("no_manifest", "missing_file", "manifest.json"),
        ("no_signature", "missing_file", "manifest.sig"),
        ("dotdot", "dotdot_path", "'..'"),
        ("absolute", "absolute_path", "absolute path"),
        ("backslash_absolute", "absolute_path", "absolute path"),
        ("hidden", "unsafe_path", "not a plain relative path"),
        ("duplicate", "duplicate_member", "appears twice"),
        ("hash", "hash_mismatch", "SHA-256"),
        ("size", "size_mismatch", "bytes, not"),
        ("bad_signature", "bad_signature", "does not verify"),
        ("unknown_key", "unknown_key", "not pinned"),
        ("garbage_signature", "bad_signature", "does not parse"),
    ],
)
def test_tampered_bundles_are_refused_with_a_reason(forge, case, code, words):
    """Each kind of tampering is refused with its own code and a reason that says what is wrong."""
    error = _refused(_tampered(forge, case), [forge.public])
    assert error.code == code
    assert words in str(error)


@pytest.mark.parametrize(
    ("kind", "code", "words"),
    [
        (tarfile.SYMTYPE, "symlink", "is a symlink"),
        (tarfile.LNKTYPE, "hardlink", "is a hardlink"),
        (tarfile.CHRTYPE, "special_member", "is a device"),
        (tarfile.BLKTYPE, "special_member", "is a device"),
        (tarfile.FIFOTYPE, "special_member", "is a fifo"),
        (tarfile.DIRTYPE, "special_member", "is a directory"),
    ],
)
def test_link_device_and_directory_members_are_refused(forge, make_raw_tar, kind, code, words):
    """A member that is not a regular file is refused, even one that looks like a rule file."""
    special = _special(
        "rules/yara/zz.yar", kind, "/etc/passwd" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
    )
    error = _refused(make_raw_tar([*forge.members(), special]), [forge.public])
    assert (error.code, words in error.reason) == (code, True)


def test_truncated_archives_are_refused(forge):
    """A bundle cut anywhere (mid-stream or just its gzip trailer) is refused as truncated."""
    data = forge.bundle()
    for cut in (len(data) // 2, len(data) - 4, 20):
        assert _refused(data[:cut], [forge.public]).code == "truncated"


def test_tar_without_end_marker_is_refused(forge, make_raw_tar):
    """A gzip stream that is whole but holds a tar cut at a member boundary is refused as truncated."""
    raw = make_raw_tar(forge.members(), compress=False)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        tar.getmembers()
        end = tar.offset  # where the end-of-archive blocks start
    for cut in range(512, end + 512 + 1, 512):
        error = _refused(gzip.compress(raw[:cut], mtime=0), [forge.public])
        assert error.code in {"truncated", "corrupt", "missing_file"}, (cut, error)


def test_corrupt_and_trailing_data_are_refused(forge):
    """Not gzip, a flipped byte, and bytes after the gzip stream are all refused."""
    data = forge.bundle()
    assert _refused(b"PK\x03\x04" + data, [forge.public]).code == "corrupt"
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    assert _refused(bytes(flipped), [forge.public]).code in {"corrupt", "truncated"}
    assert _refused(data + b"junk", [forge.public]).code == "corrupt"
    assert _refused(gzip.compress(b"not a tar" * 200), [forge.public]).code in {"corrupt", "truncated"}


def test_limits_bound_size_members_and_inflation(forge, make_raw_tar):
    """Bundle size, unpacked size, member size and member count each have a refusing limit."""
    data = forge.bundle()
    pins = [forge.public]
    assert _refused(data, pins, BundleLimits(max_bundle_bytes=len(data) - 1)).code == "too_large"
    assert _refused(data, pins, BundleLimits(max_unpacked_bytes=4096)).code == "too_large"
    assert _refused(data, pins, BundleLimits(max_member_bytes=1000)).code == "too_large"
    assert _refused(data, pins, BundleLimits(max_members=3)).code == "too_many_members"
    bomb = gzip.compress(bytes(50 << 20), compresslevel=9, mtime=0)
    assert _refused(bomb, pins, BundleLimits(max_unpacked_bytes=1 << 20)).code == "too_large"


def test_signed_manifest_must_be_strict(forge):
    """A validly signed manifest with an unknown key or a non-rule file is still refused."""
    files = forge.files()
    good = forge.manifest(files)
    loose = encode_manifest(good)[:-1] + b',"extra":1}'
    members = forge.members(files=files)
    members[0] = ("manifest.json", loose)
    members[1] = ("manifest.sig", sign(forge.key, loose))
    assert _refused(forge.pack(members), [forge.public]).code == "bad_manifest"
    script = Manifest(
        good.format, 1, good.created, good.min_agent_version, (*good.files, FileEntry("run.sh", "0" * 64, 0))
    )
    members = [*forge.members(files=files, manifest=script), ("rules/run.sh", b"")]
    assert _refused(forge.pack(members), [forge.public]).code == "bad_manifest"


def test_reasons_escape_control_characters(forge):
    """A hostile member name reaches the message escaped and shortened, never raw."""
    name = "rules/\x1b[31mred\x1b[0m" + "x" * 200 + ".yar"
    error = _refused(forge.pack([*forge.members(), (name, b"x")]), [forge.public])
    assert "\x1b" not in str(error)
    assert len(str(error)) < 300
