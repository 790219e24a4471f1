"""Private hash-prefix reputation: the Safe Browsing model, for files.

The agent holds the cloud's signed list of 4-byte SHA-256 prefixes of known-bad files and checks
every scanned object against it **locally**. Only on a local prefix hit does it ask the cloud, and
then it sends that prefix hidden among random decoys, in a fixed-size batch, without the device
pseudonym; the answer (full hashes) is compared on the device. For an object with no prefix hit
nothing at all is sent, whether its data is personal or not. Answers, positive and negative, are
cached for the duration the cloud states.

The prefix list is an Ed25519-signed envelope (see ``cloud/signing.py`` for the format); it is
verified against the key pinned in ``upstream.prefix_key``, and a version lower than the one held
(a rollback) or a delta that does not start at the held version is refused.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.errors import UpstreamError
from agent.upstream.client import UpstreamClient

__all__ = ["PrefixList", "Reputation", "verify_prefix_envelope"]

log = structlog.get_logger("endpoint-agent")
PREFIX_HEX = 8  # 4 bytes
SEARCH_BATCH = 16
_FORMAT = "endpoint-cloud/prefix-list/v1"


def verify_prefix_envelope(envelope: bytes, public_key_b64: str) -> dict[str, Any]:
    """Verify the signed envelope; return its payload document, or raise UpstreamError."""
    try:
        outer = json.loads(envelope)
        payload = base64.b64decode(outer["payload"], validate=True)
        signature = base64.b64decode(outer["signature"], validate=True)
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
        key.verify(signature, payload)
        document = json.loads(payload)
    except (InvalidSignature, KeyError, TypeError, ValueError) as exc:
        raise UpstreamError(f"the prefix list does not verify ({type(exc).__name__})") from exc
    if not isinstance(document, dict) or document.get("format") != _FORMAT:
        raise UpstreamError("the prefix list has an unknown format")
    if document.get("prefix_bytes") != PREFIX_HEX // 2 or not isinstance(document.get("version"), int):
        raise UpstreamError("the prefix list has an unexpected shape")
    return document


@dataclass(slots=True)
class PrefixList:
    """The known-bad prefixes held locally, with their version; persisted 0600 in the state dir."""

    version: int = -1
    prefixes: frozenset[str] = field(default_factory=frozenset)

    def apply(self, document: dict[str, Any]) -> bool:
        """Apply a verified full list or delta; refuse a rollback. Returns whether anything changed."""
        version = int(document["version"])
        if version < self.version:
            raise UpstreamError(f"prefix list rollback refused ({version} < {self.version})")
        if document.get("kind") == "full":
            fresh = _prefixes(document.get("prefixes"))
        elif document.get("kind") == "delta":
            if document.get("since") != self.version:
                raise UpstreamError("prefix delta does not start at the version held")
            fresh = (self.prefixes - _prefixes(document.get("removed"))) | _prefixes(document.get("added"))
        else:
            raise UpstreamError("prefix list of unknown kind")
        changed = version != self.version or fresh != self.prefixes
        self.version, self.prefixes = version, fresh
        return changed

    @classmethod
    def load(cls, path: Path) -> PrefixList:
        """The list saved at ``path``, or an empty one."""
        try:
            data = json.loads(path.read_text())
            return cls(int(data["version"]), _prefixes(data["prefixes"]))
        except (OSError, ValueError, KeyError, TypeError, UpstreamError):
            return cls()

    def save(self, path: Path) -> None:
        """Write atomically, 0600."""
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"version": self.version, "prefixes": sorted(self.prefixes)}, fh)
        tmp.replace(path)


def _prefixes(values: object) -> frozenset[str]:
    if not isinstance(values, list) or not all(
        isinstance(v, str) and len(v) == PREFIX_HEX and all(c in "0123456789abcdef" for c in v)
        for v in values
    ):
        raise UpstreamError("the prefix list holds a malformed prefix")
    return frozenset(values)


class Reputation:
    """Local prefix checks, and private lookups on a hit. Thread-safe; the client is used under a lock."""

    def __init__(
        self,
        client: UpstreamClient | None,
        key_b64: str,
        path: Path,
        log_sent: Callable[[str, str, str, bytes], None] | None = None,
        sending: Callable[[str, str], AbstractContextManager[Any]] | None = None,
    ) -> None:
        self._client, self._key, self._path = client, key_b64, path
        self._log_sent = log_sent
        self._sending = sending  # the egress gate: a lookup leaves only while its purpose allows it
        self.prefixes = PrefixList.load(path)
        self._answers: dict[str, tuple[float, dict[str, str]]] = {}
        self._lock = threading.Lock()
        self.lookups = 0

    def _gate(self) -> AbstractContextManager[Any]:
        if self._sending is None:
            return nullcontext(_Allowed())
        return self._sending("protection", "reputation_search")

    def close(self) -> None:
        """Close the connection to the cloud."""
        if self._client is not None:
            self._client.close()

    def sync(self) -> bool:
        """Fetch the list (a delta when one is held), verify it, apply it, save it."""
        if self._client is None or not self._key:
            return False
        since = self.prefixes.version if self.prefixes.version >= 0 else None
        with self._lock:
            envelope = self._client.prefix_list(since)
        changed = self.prefixes.apply(verify_prefix_envelope(envelope, self._key))
        if changed:
            self.prefixes.save(self._path)
            self._answers.clear()
            log.info(
                "prefix_list_updated", version=self.prefixes.version, prefixes=len(self.prefixes.prefixes)
            )
        return changed

    def check(self, sha256: str) -> str | None:
        """The known-bad name of this hash, or None. Sends nothing unless the prefix is listed."""
        prefix = sha256[:PREFIX_HEX]
        if prefix not in self.prefixes.prefixes:
            return None
        answer = self._cached(prefix)
        if answer is None:
            answer = self._search(prefix)
        return answer.get(sha256)

    def _cached(self, prefix: str) -> dict[str, str] | None:
        entry = self._answers.get(prefix)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def _search(self, prefix: str) -> dict[str, str]:
        if self._client is None:
            return {}
        batch = [prefix, *(secrets.token_hex(PREFIX_HEX // 2) for _ in range(SEARCH_BATCH - 1))]
        secrets.SystemRandom().shuffle(batch)
        try:
            with self._lock, self._gate() as decision:
                if not decision.allowed:
                    log.info("reputation_lookup_withheld", reason=decision.reason)
                    return {}
                reply = self._client.search(batch)
        except UpstreamError as exc:
            log.warning("reputation_lookup_failed", error=str(exc))
            return {}
        self.lookups += 1
        if self._log_sent is not None:
            self._log_sent(
                self._client.recipient, "protection", "reputation_search", _json({"prefixes": batch})
            )
        matches = _matches(reply)
        expires = time.monotonic() + min(float(reply.get("cache_seconds", 0) or 0), 86_400.0)
        for p in batch:  # the decoys' answers are as good as the real one's: cache them all
            self._answers[p] = (expires, {h: n for h, n in matches.items() if h.startswith(p)})
        return self._answers[prefix][1]


class _Allowed:
    allowed = True
    reason = "no gate configured"


def _matches(reply: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for m in reply.get("matches", []):
        if isinstance(m, dict) and isinstance(m.get("sha256"), str) and isinstance(m.get("name"), str):
            found[m["sha256"].lower()] = m["name"]
    return found


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
