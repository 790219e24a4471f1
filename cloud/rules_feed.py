"""The rule-bundle feed: signed bundles published by the operator, the newest served to agents.

``endpoint-cloud publish-rules BUNDLE --db FILE [--minimum-wait S]`` stores a bundle (built and
signed by the vendor with ``endpoint-agent rules build``; the cloud holds no rules key and does not
re-sign). Its version is read from the bundle's ``manifest.json`` and must be above every version
published before. ``GET /v1/rules/latest`` (no token; nothing about the request is stored) answers:

- ``200``, ``Content-Type: application/gzip``: the newest bundle, byte for byte as published;
- ``304`` (no body) when ``If-None-Match`` names its ETag (or is ``*``);
- ``404 no_rules`` when nothing is published.

``200`` and ``304`` carry ``ETag: "<SHA-256 of the bundle, hex>"``, ``Rules-Version: <version>``,
``Minimum-Wait: <seconds>`` (the least time an agent waits before asking again; set at publication,
3600 by default) and ``Cache-Control: no-cache``. The agent verifies the bundle against the vendor
key it pins; the feed only checks that the bundle names its format and version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import sqlite3
import tarfile
import zlib
from dataclasses import dataclass

from cloud.store import transaction

__all__ = ["DEFAULT_MINIMUM_WAIT", "LatestBundle", "RulesFeed", "bundle_version", "etag_matches"]

DEFAULT_MINIMUM_WAIT = 3600
MAX_BUNDLE_BYTES = 64 << 20
_FORMAT = "endpoint-agent/rules-bundle/v1"
_MAX_MANIFEST = 4 << 20
_SCHEMA = """
CREATE TABLE IF NOT EXISTS rule_bundles (
    version INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL,
    minimum_wait INTEGER NOT NULL,
    published_at TEXT NOT NULL,
    body BLOB NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class LatestBundle:
    """The newest published bundle and what the feed says about it."""

    version: int
    etag: str
    minimum_wait: int
    body: bytes

    def headers(self) -> dict[str, str]:
        """The headers of a 200 or 304 answer."""
        return {
            "ETag": self.etag,
            "Rules-Version": str(self.version),
            "Minimum-Wait": str(self.minimum_wait),
            "Cache-Control": "no-cache",
        }


def bundle_version(data: bytes) -> int:
    """The version in a bundle's ``manifest.json`` (its first member); ValueError if it has none."""
    if data[:2] != b"\x1f\x8b":
        raise ValueError("not a rule bundle: not gzip data")
    try:
        head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, _MAX_MANIFEST + 4096)
        with tarfile.open(fileobj=io.BytesIO(head), mode="r:") as tar:
            info = tar.next()
            if info is None or info.name != "manifest.json" or not info.isreg() or info.size > _MAX_MANIFEST:
                raise ValueError("not a rule bundle: manifest.json must be its first member")
            handle = tar.extractfile(info)
            manifest = json.loads(handle.read() if handle is not None else b"")
    except (tarfile.TarError, zlib.error, EOFError, RecursionError) as exc:
        raise ValueError(f"not a rule bundle: {type(exc).__name__}") from exc
    version = manifest.get("version") if isinstance(manifest, dict) else None
    if type(version) is not int or version < 1 or manifest.get("format") != _FORMAT:
        raise ValueError("not a rule bundle: its manifest has no format or version")
    return version


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (weak comparison, ``*`` matches)."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


class RulesFeed:
    """Published bundles in the record database's ``rule_bundles`` table; the newest is cached."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        conn.executescript(_SCHEMA)
        self._cached: LatestBundle | None = None

    def publish(self, data: bytes, minimum_wait: int = DEFAULT_MINIMUM_WAIT) -> int:
        """Store a bundle; its version must be above every published one. Returns the version."""
        if len(data) > MAX_BUNDLE_BYTES:
            raise ValueError(f"the bundle is larger than {MAX_BUNDLE_BYTES} bytes")
        if minimum_wait < 0:
            raise ValueError("minimum wait must not be negative")
        version = bundle_version(data)
        published = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with transaction(self.conn):
            (newest,) = self.conn.execute("SELECT coalesce(max(version), 0) FROM rule_bundles").fetchone()
            if version <= newest:
                raise ValueError(f"version {version} is not above {newest}, the newest published")
            self.conn.execute(
                "INSERT INTO rule_bundles VALUES (?, ?, ?, ?, ?)",
                (version, hashlib.sha256(data).hexdigest(), minimum_wait, published, data),
            )
        return version

    def latest(self) -> LatestBundle | None:
        """The newest published bundle, or None."""
        row = self.conn.execute(
            "SELECT version, sha256, minimum_wait FROM rule_bundles ORDER BY version DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        version, sha256, minimum_wait = row
        if self._cached is None or self._cached.version != version:
            (body,) = self.conn.execute(
                "SELECT body FROM rule_bundles WHERE version = ?", (version,)
            ).fetchone()
            self._cached = LatestBundle(version, f'"{sha256}"', minimum_wait, bytes(body))
        return self._cached
