"""Rule bundles: build one (vendor side), and read one only after every check passed (agent side).

A bundle is a gzip'd tar (ustar/pax) of regular files only, in this order::

    manifest.json        the manifest (see agent.updates.manifest), exact bytes signed
    manifest.sig         {"key_id": "<16 hex>", "signature": "<base64 of 64 bytes>"}
    rules/<path>         every file the manifest lists, nothing else

The signature is Ed25519 over exactly the bytes of ``manifest.json``; ``key_id`` names the pinned
key to check it with (several keys may be pinned, for rotation). The reader works in memory under
:class:`BundleLimits` and never writes anything: it refuses a gzip or tar that is corrupt or
truncated, any member that is not a regular file (symlink, hardlink, device, fifo, directory,
sparse), an absolute, ``..`` or otherwise unplain name, a duplicate name, too many or too large
members, an unknown key or bad signature, and any file that is extra, missing, or differs in size
or SHA-256 from the manifest. Every refusal is a :class:`BundleError` with a code and a reason.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import io
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent import __version__
from agent.updates.keys import key_id, load_signing_key, pinned_keys
from agent.updates.manifest import (
    FORMAT,
    MANIFEST_NAME,
    RULES_PREFIX,
    SIGNATURE_NAME,
    BundleError,
    FileEntry,
    Manifest,
    check_name,
    decode_manifest,
    encode_manifest,
    shown,
)
from agent.updates.tree import check_tree, collect_tree, write_tree

__all__ = [
    "DEFAULT_LIMITS",
    "BundleLimits",
    "VerifiedBundle",
    "build",
    "bundle_bytes",
    "manifest_for",
    "pack",
    "read_bundle",
    "sign",
    "verify",
]

_MIB = 1 << 20
_MAX_SIGNATURE_DOC = 1024
_END_OF_ARCHIVE = 1024  # two zero blocks


@dataclass(frozen=True, slots=True)
class BundleLimits:
    """Bounds on what the reader accepts, so a hostile bundle cannot exhaust memory."""

    max_bundle_bytes: int = 64 * _MIB
    max_unpacked_bytes: int = 256 * _MIB
    max_member_bytes: int = 128 * _MIB
    max_members: int = 10_000


DEFAULT_LIMITS = BundleLimits()


class _Signature(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    key_id: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{16}$")]
    signature: Annotated[str, msgspec.Meta(max_length=128)]


@dataclass(frozen=True, slots=True)
class VerifiedBundle:
    """A bundle that passed every check: its manifest, signature document and file contents."""

    manifest: Manifest
    manifest_bytes: bytes
    signature_doc: bytes
    key_id: str
    files: Mapping[str, bytes]


# ---------------------------------------------------------------------- vendor side
def sign(key: Ed25519PrivateKey, manifest_bytes: bytes) -> bytes:
    """The ``manifest.sig`` document for ``manifest_bytes``."""
    signature = key.sign(manifest_bytes)
    return msgspec.json.encode(_Signature(key_id(key), base64.b64encode(signature).decode()))


def pack(members: Iterable[tuple[str, bytes]], mtime: int = 0) -> bytes:
    """A gzip'd tar of regular files (root-owned, 0644) in the given order; deterministic."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), mtime, 0o644
            tar.addfile(info, io.BytesIO(data))
    return _gzip(raw.getvalue())


def _gzip(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def manifest_for(
    files: Mapping[str, bytes], version: int, created: dt.datetime, min_agent_version: str = __version__
) -> Manifest:
    """The manifest listing ``files`` (path under ``rules/`` to content), sorted by path."""
    entries = tuple(
        FileEntry(path, hashlib.sha256(data).hexdigest(), len(data)) for path, data in sorted(files.items())
    )
    stamp = created.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Manifest(FORMAT, version, stamp, min_agent_version, entries)


def bundle_bytes(manifest: Manifest, files: Mapping[str, bytes], key: Ed25519PrivateKey) -> bytes:
    """Sign ``manifest`` and pack it with ``files`` into bundle bytes."""
    manifest_bytes = encode_manifest(manifest)
    members = [(MANIFEST_NAME, manifest_bytes), (SIGNATURE_NAME, sign(key, manifest_bytes))]
    members += [(RULES_PREFIX + path, files[path]) for path in sorted(files)]
    mtime = int(
        dt.datetime.strptime(manifest.created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()
    )
    return pack(members, mtime)


def build(
    src_dir: Path,
    key_file: Path,
    out: Path,
    version: int | None = None,
    *,
    created: dt.datetime | None = None,
    min_agent_version: str = __version__,
    check: bool = True,
) -> Manifest:
    """Bundle the rules under ``src_dir``, signed with ``key_file``, into ``out``; return the manifest.

    ``version`` defaults to the creation time in whole seconds since the epoch, so bundles built
    later get higher versions. With ``check`` the rules must compile and the policy must parse first.
    """
    key = load_signing_key(key_file)
    files = collect_tree(src_dir)
    when = created or dt.datetime.now(dt.UTC)
    manifest = manifest_for(files, version or int(when.timestamp()), when, min_agent_version)
    decode_manifest(encode_manifest(manifest))  # refuse here what every agent would refuse
    if check:
        with tempfile.TemporaryDirectory(prefix="rules-check-") as tmp:
            write_tree(Path(tmp), files)
            check_tree(Path(tmp))
    data = bundle_bytes(manifest, files, key)
    tmp_out = out.with_name(f".{out.name}.tmp")
    tmp_out.write_bytes(data)
    tmp_out.replace(out)
    return manifest


# ---------------------------------------------------------------------- agent side
def verify(bundle: Path | bytes, pinned_public_keys: Iterable[str]) -> Manifest:
    """Check a bundle completely against the pinned base64 public keys; return its manifest."""
    return read_bundle(bundle, pinned_keys(pinned_public_keys)).manifest


def read_bundle(
    bundle: Path | bytes, keys: Mapping[str, Ed25519PublicKey], limits: BundleLimits = DEFAULT_LIMITS
) -> VerifiedBundle:
    """Read a bundle into memory and check everything; raise BundleError naming the first problem."""
    data = _read_source(bundle, limits) if isinstance(bundle, Path) else bundle
    members = _members(_gunzip(data, limits), limits)
    manifest_bytes = _take(members, MANIFEST_NAME)
    signature_doc = _take(members, SIGNATURE_NAME)
    signer = _check_signature(manifest_bytes, signature_doc, keys)
    manifest = decode_manifest(manifest_bytes)
    files = _match(manifest, members)
    return VerifiedBundle(manifest, manifest_bytes, signature_doc, signer, files)


def _read_source(path: Path, limits: BundleLimits) -> bytes:
    try:
        with path.open("rb") as fh:
            data = fh.read(limits.max_bundle_bytes + 1)
    except OSError as exc:
        raise BundleError("unreadable", f"cannot read the bundle: {exc.strerror}") from exc
    return data


def _gunzip(data: bytes, limits: BundleLimits) -> bytes:
    if len(data) > limits.max_bundle_bytes:
        raise BundleError("too_large", f"bundle is larger than {limits.max_bundle_bytes} bytes")
    if data[:2] != b"\x1f\x8b":
        raise BundleError("corrupt", "not a gzip file")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        tar = inflater.decompress(data, limits.max_unpacked_bytes + 1)
    except zlib.error as exc:
        raise BundleError("corrupt", f"gzip data is corrupt: {exc}") from exc
    if len(tar) > limits.max_unpacked_bytes:
        raise BundleError("too_large", f"bundle unpacks to more than {limits.max_unpacked_bytes} bytes")
    if not inflater.eof:
        raise BundleError("truncated", "the archive is truncated (gzip stream ends early)")
    if inflater.unused_data:
        raise BundleError("corrupt", "data follows the end of the gzip stream")
    return tar


def _members(tar_bytes: bytes, limits: BundleLimits) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
            while (info := tar.next()) is not None:
                if len(found) >= limits.max_members:
                    raise BundleError("too_many_members", f"more than {limits.max_members} members")
                _check_member(info, found, limits)
                found[info.name] = _read_member(tar, info)
            end = tar.offset
    except (tarfile.TarError, EOFError, UnicodeError, ValueError, OverflowError) as exc:
        raise BundleError("corrupt", f"tar data is corrupt or truncated: {type(exc).__name__}") from exc
    tail = tar_bytes[end:]
    if len(tail) < _END_OF_ARCHIVE or tail.count(0) != len(tail):
        raise BundleError("truncated", "the tar archive has no clean end-of-archive marker")
    return found


def _check_member(info: tarfile.TarInfo, found: Mapping[str, bytes], limits: BundleLimits) -> None:
    check_name(info.name)
    kind = _special_kind(info)
    if kind:
        code = kind if kind in {"symlink", "hardlink"} else "special_member"
        raise BundleError(code, f"member {shown(info.name)} is a {kind}, not a regular file")
    if info.name in found:
        raise BundleError("duplicate_member", f"member {shown(info.name)} appears twice")
    if info.size > limits.max_member_bytes:
        raise BundleError("too_large", f"member {shown(info.name)} is larger than {limits.max_member_bytes}")


def _special_kind(info: tarfile.TarInfo) -> str:
    checks = (
        (info.issym(), "symlink"),
        (info.islnk(), "hardlink"),
        (info.ischr() or info.isblk(), "device"),
        (info.isfifo(), "fifo"),
        (info.isdir(), "directory"),
        (info.issparse(), "sparse file"),
        (info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE), "member of an unsupported type"),
    )
    return next((kind for hit, kind in checks if hit), "")


def _read_member(tar: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(info)
    data = handle.read() if handle is not None else b""
    if len(data) != info.size:
        raise BundleError("truncated", f"member {shown(info.name)} is cut short")
    return data


def _take(members: dict[str, bytes], name: str) -> bytes:
    try:
        return members.pop(name)
    except KeyError:
        raise BundleError("missing_file", f"the bundle has no {name}") from None


def _check_signature(manifest_bytes: bytes, doc: bytes, keys: Mapping[str, Ed25519PublicKey]) -> str:
    if len(doc) > _MAX_SIGNATURE_DOC:
        raise BundleError("bad_signature", f"{SIGNATURE_NAME} is too large")
    try:
        parsed = msgspec.json.decode(doc, type=_Signature)
        signature = _unb64(parsed.signature)
    except (msgspec.DecodeError, ValueError) as exc:
        raise BundleError("bad_signature", f"{SIGNATURE_NAME} does not parse: {exc}") from exc
    key = keys.get(parsed.key_id)
    if key is None:
        raise BundleError("unknown_key", f"signed by key {parsed.key_id}, which is not pinned")
    try:
        key.verify(signature, manifest_bytes)
    except InvalidSignature:
        raise BundleError("bad_signature", f"the signature by key {parsed.key_id} does not verify") from None
    return parsed.key_id


def _match(manifest: Manifest, members: Mapping[str, bytes]) -> dict[str, bytes]:
    listed = {RULES_PREFIX + e.path: e for e in manifest.files}
    for name in members:
        if name not in listed:
            raise BundleError("extra_file", f"member {shown(name)} is not in the manifest")
    files: dict[str, bytes] = {}
    for name, entry in listed.items():
        data = members.get(name)
        if data is None:
            raise BundleError("missing_file", f"{shown(entry.path)} is in the manifest but not the bundle")
        if len(data) != entry.size:
            raise BundleError("size_mismatch", f"{shown(entry.path)} has {len(data)} bytes, not {entry.size}")
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise BundleError("hash_mismatch", f"{shown(entry.path)} does not match its SHA-256")
        files[entry.path] = data
    return files


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError("signature is not base64") from exc
