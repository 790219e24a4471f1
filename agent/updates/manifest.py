"""The signed manifest of a rule bundle, the names a bundle may hold, and the one error type.

The manifest is UTF-8 JSON with exactly these keys (no others)::

    {"format": "endpoint-agent/rules-bundle/v1", "version": 42, "created": "2026-01-02T03:04:05Z",
     "min_agent_version": "0.1.0",
     "files": [{"path": "yara/eicar.yar", "sha256": "<64 lower-case hex>", "size": 123}, ...]}

``version`` is a positive integer that only grows; ``created`` is UTC to the second; every file the
bundle carries under ``rules/`` is listed once, by its path relative to ``rules/``. A path is made of
components ``[A-Za-z0-9_][A-Za-z0-9._-]*`` (no ``..``, no empty or hidden component, no backslash)
and is a rule file (``*.yar``, ``*.yara``, ``*.hsb``, ``*.hdb``) anywhere, or ``policy.toml`` or
``purposes.toml`` at the top.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

import msgspec

from agent.errors import RulesError

__all__ = [
    "FORMAT",
    "MANIFEST_NAME",
    "RULES_PREFIX",
    "SIGNATURE_NAME",
    "BundleError",
    "FileEntry",
    "Manifest",
    "check_name",
    "decode_manifest",
    "encode_manifest",
    "parse_created",
    "parse_version",
    "shown",
]

FORMAT = "endpoint-agent/rules-bundle/v1"
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
RULES_PREFIX = "rules/"
RULE_SUFFIXES = (".yar", ".yara", ".hsb", ".hdb")
ROOT_FILES = ("policy.toml", "purposes.toml")
_COMPONENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_MAX_DEPTH = 8
_CREATED = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"
_AGENT_VERSION = r"^[0-9]{1,6}(\.[0-9]{1,6}){0,3}$"
_LEADING_VERSION = re.compile(r"^[0-9]+(\.[0-9]+)*")


class BundleError(RulesError):
    """A rule bundle or update was refused; ``code`` is a short machine reason, the message says why.

    Codes: ``unreadable``, ``corrupt``, ``truncated``, ``too_large``, ``too_many_members``, ``unsafe_path``,
    ``absolute_path``, ``dotdot_path``, ``symlink``, ``hardlink``, ``special_member``,
    ``duplicate_member``, ``extra_file``, ``missing_file``, ``size_mismatch``, ``hash_mismatch``,
    ``bad_manifest``, ``bad_signature``, ``unknown_key``, ``not_newer``, ``stale``, ``future``,
    ``agent_too_old``, ``compile_error``, ``no_previous``, ``fetch_failed``.
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"rule bundle refused ({code}): {reason}")
        self.code = code
        self.reason = reason


class FileEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One file of the bundle: its path under ``rules/``, SHA-256 and size."""

    path: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    sha256: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
    size: Annotated[int, msgspec.Meta(ge=0)]


class Manifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the signature covers: format, version, creation time, minimum agent version, files."""

    format: str
    version: Annotated[int, msgspec.Meta(ge=1, le=2**53)]
    created: Annotated[str, msgspec.Meta(pattern=_CREATED)]
    min_agent_version: Annotated[str, msgspec.Meta(pattern=_AGENT_VERSION)]
    files: tuple[FileEntry, ...]


def shown(name: str) -> str:
    """A member name fit for a message: quoted, control characters escaped, at most 80 characters."""
    return repr(name[:80] + ("..." if len(name) > 80 else ""))


def check_name(name: str) -> None:
    """Refuse a member name that is absolute, climbs with ``..``, or is otherwise not a plain path."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise BundleError("absolute_path", f"member {shown(name)} has an absolute path")
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        raise BundleError("dotdot_path", f"member {shown(name)} has a '..' path component")
    if len(parts) > _MAX_DEPTH or not all(_COMPONENT.fullmatch(p) for p in parts):
        raise BundleError("unsafe_path", f"member {shown(name)} is not a plain relative path")


def _check_rule_path(path: str) -> None:
    check_name(path)
    if path not in ROOT_FILES and not path.lower().endswith(RULE_SUFFIXES):
        raise BundleError("bad_manifest", f"{shown(path)} is not a rule, hash-list or policy file")


def encode_manifest(manifest: Manifest) -> bytes:
    """The manifest's canonical bytes (the signature covers exactly these)."""
    return msgspec.json.encode(manifest)


def decode_manifest(data: bytes) -> Manifest:
    """Parse and check manifest bytes (already verified); refuse unknown keys and unsafe paths."""
    try:
        manifest = msgspec.json.decode(data, type=Manifest)
    except msgspec.DecodeError as exc:
        raise BundleError("bad_manifest", f"manifest does not parse: {exc}") from exc
    if manifest.format != FORMAT:
        raise BundleError("bad_manifest", f"unknown manifest format {shown(manifest.format)}")
    parse_created(manifest.created)
    seen: set[str] = set()
    for entry in manifest.files:
        _check_rule_path(entry.path)
        if entry.path in seen:
            raise BundleError("bad_manifest", f"manifest lists {shown(entry.path)} twice")
        seen.add(entry.path)
    if not any(p.lower().endswith(RULE_SUFFIXES) for p in seen):
        raise BundleError("bad_manifest", "manifest lists no rule or hash-list file")
    return manifest


def parse_created(created: str) -> dt.datetime:
    """The manifest's creation time as an aware UTC datetime."""
    try:
        return dt.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise BundleError("bad_manifest", f"created is not a UTC time: {shown(created)}") from exc


def parse_version(text: str) -> tuple[int, ...]:
    """The leading dotted numbers of a version string, e.g. ``0.1.0rc1`` gives ``(0, 1, 0)``."""
    match = _LEADING_VERSION.match(text)
    return tuple(int(p) for p in match.group().split(".")) if match else (0,)
