"""The running service: its settings, open stores, signing key, rate limiter and authentication."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.requests import Request

from cloud.analytics import AnalyticsIntake
from cloud.errors import RequestRejected
from cloud.ratelimit import RateLimiter
from cloud.reputation import REPUTATION_SCHEMA, ReputationStore
from cloud.rules_feed import RulesFeed
from cloud.signing import load_or_create_key
from cloud.store import AuthStore, RecordStore

__all__ = ["MiB", "Service", "Settings", "service_of"]

_TOKEN = re.compile(r"^[A-Za-z0-9_\-]{43}$")
MiB = 1 << 20


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service is configured with; ``serve``'s options map onto it one to one."""

    db: Path
    auth_db: Path
    signing_key: Path
    product_keys: tuple[str, ...] = ()
    rate: float = 20.0
    burst: int = 100
    cache_seconds: int = 3600
    max_body: int = 8 * MiB
    max_inflated: int = 8 * MiB


@dataclass(slots=True)
class Service:
    """The open stores, signing key and rate limiter of one running app."""

    settings: Settings
    records: RecordStore = field(init=False)
    reputation: ReputationStore = field(init=False)
    rules: RulesFeed = field(init=False)
    auth: AuthStore = field(init=False)
    limiter: RateLimiter = field(init=False)
    signing_key: Ed25519PrivateKey = field(init=False)
    analytics: AnalyticsIntake = field(init=False)

    def __post_init__(self) -> None:
        self.signing_key = load_or_create_key(self.settings.signing_key)
        self.records = RecordStore(self.settings.db, REPUTATION_SCHEMA)
        self.reputation = ReputationStore(self.records.conn)
        self.rules = RulesFeed(self.records.conn)
        self.auth = AuthStore(self.settings.auth_db)
        self.limiter = RateLimiter(self.settings.rate, self.settings.burst)
        self.analytics = AnalyticsIntake(self.records.conn)

    def close(self) -> None:
        """Close both databases."""
        self.records.close()
        self.auth.close()

    def product_key_id(self, offered: str) -> str | None:
        """A short id of ``offered`` if it is a configured product key (compared in constant time)."""
        matched = None
        for key in self.settings.product_keys:
            if hmac.compare_digest(key.encode(), offered.encode()):
                matched = key
        return hashlib.sha256(matched.encode()).hexdigest()[:16] if matched is not None else None

    def authorize(self, request: Request) -> None:
        """Require a known bearer token and take one request from its rate-limit bucket."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        key = self.auth.lookup(token) if scheme.lower() == "bearer" and _TOKEN.fullmatch(token) else None
        if key is None:
            raise RequestRejected(
                401, "unauthorized", "a valid bearer token is required", {"WWW-Authenticate": "Bearer"}
            )
        wait = self.limiter.acquire(key)
        if wait:
            raise RequestRejected(429, "rate_limited", "too many requests", {"Retry-After": str(wait)})


def service_of(request: Request) -> Service:
    """The service behind the app that is handling ``request``."""
    return cast("Service", request.app.state.service)
