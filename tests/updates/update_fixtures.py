"""Fixtures for rule-bundle tests: a vendor signing key and a forge for good and hostile bundles.

This is a plugin module, not a conftest.py (see tests/cloud/cloud_fixtures.py for why); test modules
load it with ``pytest_plugins = ["update_fixtures"]``.

For a signed bundle elsewhere (e.g. a service test), the product API is enough::

    from agent.updates import build, generate_key, public_key_b64
    key = generate_key(tmp_path / "vendor.pem")
    build(rules_dir, tmp_path / "vendor.pem", tmp_path / "b.tar.gz", version=2)
    UpdateSettings(pinned_keys=(public_key_b64(key),))
"""

from __future__ import annotations

import datetime as dt
import io
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.config import bundled_rules_dir
from agent.updates import UpdateSettings, generate_key, public_key_b64
from agent.updates.bundle import bundle_bytes, manifest_for, pack, sign
from agent.updates.manifest import MANIFEST_NAME, RULES_PREFIX, SIGNATURE_NAME, Manifest, encode_manifest
from agent.updates.tree import collect_tree

EXTRA_RULE = b"""
rule Test_Update_Marker_%d
{
    meta:
        severity = "high"
    strings:
        $a = "endpoint-agent-update-marker-%d"
    condition:
        $a
}
"""


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass
class Forge:
    """Builds bundles from the bundled rules, signed with ``key`` unless told otherwise."""

    key: Ed25519PrivateKey
    tmp: Path

    @property
    def public(self) -> str:
        return public_key_b64(self.key)

    def settings(self, **overrides) -> UpdateSettings:
        return UpdateSettings(pinned_keys=(self.public,), **overrides)

    def files(self, marker: int = 1, extra: Mapping[str, bytes] | None = None) -> dict[str, bytes]:
        """The bundled rules plus one marker rule (so each version's rules differ) and ``extra``."""
        files = collect_tree(bundled_rules_dir())
        files[f"yara/marker_{marker}.yar"] = EXTRA_RULE % (marker, marker)
        return {**files, **(extra or {})}

    def manifest(
        self,
        files: Mapping[str, bytes],
        version: int = 1,
        created: dt.datetime | None = None,
        agent: str = "0.1.0",
    ) -> Manifest:
        return manifest_for(files, version, created or now(), agent)

    def bundle(
        self,
        version: int = 1,
        *,
        files: Mapping[str, bytes] | None = None,
        created: dt.datetime | None = None,
        key: Ed25519PrivateKey | None = None,
        agent: str = "0.1.0",
    ) -> bytes:
        files = files if files is not None else self.files(version)
        return bundle_bytes(self.manifest(files, version, created, agent), files, key or self.key)

    def members(
        self, version: int = 1, files: Mapping[str, bytes] | None = None, manifest: Manifest | None = None
    ) -> list[tuple[str, bytes]]:
        """The members of a good bundle, to be tampered with before ``pack``."""
        files = files if files is not None else self.files(version)
        manifest_bytes = encode_manifest(manifest or self.manifest(files, version))
        head = [(MANIFEST_NAME, manifest_bytes), (SIGNATURE_NAME, sign(self.key, manifest_bytes))]
        return head + [(RULES_PREFIX + p, d) for p, d in sorted(files.items())]

    def pack(self, members: Iterable[tuple[str, bytes]]) -> bytes:
        return pack(members)

    def write(self, data: bytes, name: str = "bundle.tar.gz") -> Path:
        path = self.tmp / name
        path.write_bytes(data)
        return path


def raw_tar(members: Iterable[tarfile.TarInfo | tuple[str, bytes]], compress: bool = True) -> bytes:
    """A tar (gzip'd) of regular files given as (name, data) and of special TarInfo members as given."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tar.addfile(info, io.BytesIO(member[1]))
    if not compress:
        return raw.getvalue()
    import gzip

    return gzip.compress(raw.getvalue(), mtime=0)


@pytest.fixture
def forge(tmp_path) -> Forge:
    """A forge with a fresh vendor key."""
    key_dir = tmp_path / "vendor"
    key_dir.mkdir()
    return Forge(generate_key(key_dir / "signing.pem"), tmp_path)


@pytest.fixture
def make_raw_tar():
    """The raw tar builder (for symlink, hardlink and device members)."""
    return raw_tar


@pytest.fixture
def state_dir(tmp_path) -> Path:
    """An empty agent state directory."""
    path = tmp_path / "state"
    path.mkdir()
    return path
