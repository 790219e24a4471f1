"""Fetching bundles over HTTPS through the upstream client (its TLS, pins and error translation).

``GET /v1/rules/latest`` (see ``cloud/rules_feed.py``) carries no token and no pseudonym: every agent
asks the same question. It answers ``200`` with the bundle and an ``ETag``, ``304`` when
``If-None-Match`` names the newest bundle, ``404`` when nothing is published; each answer may carry
``Minimum-Wait: <seconds>``, the least time the agent waits before it asks again.
"""

from __future__ import annotations

import math
import urllib.parse
from dataclasses import dataclass

from agent.config import Config
from agent.errors import ConfigError, UpstreamRejected, UpstreamUnavailable
from agent.updates.manifest import BundleError
from agent.upstream import ClientSettings, UpstreamClient

__all__ = ["RULES_PATH", "Fetched", "fetch_latest", "fetch_url", "rules_client"]

RULES_PATH = "/v1/rules/latest"
_MAX_WAIT = 7 * 86_400.0


@dataclass(frozen=True, slots=True)
class Fetched:
    """One answer: the bundle (None when unchanged or none published), its ETag and the wait asked for."""

    body: bytes | None
    etag: str | None
    minimum_wait: float


def rules_client(cfg: Config) -> UpstreamClient | None:
    """A client for the configured cloud that sends no token, or None without ``upstream.url``."""
    up = cfg.upstream
    if not up.url:
        return None
    return UpstreamClient(
        ClientSettings(url=up.url, ca_file=up.ca_file, pins=up.pin_sha256, timeout=up.timeout)
    )


def fetch_latest(client: UpstreamClient, etag: str | None, max_bytes: int, path: str = RULES_PATH) -> Fetched:
    """Ask for the newest bundle, conditionally on ``etag``; raise UpstreamError or BundleError."""
    headers = {"If-None-Match": etag} if etag else {}
    try:
        status, answer_headers, body = client.get_raw(path, headers)
    except UpstreamRejected as exc:
        if exc.status == 404:
            return Fetched(None, None, 0.0)
        raise
    lowered = {k.lower(): v for k, v in answer_headers.items()}
    wait = _minimum_wait(lowered.get("minimum-wait"))
    if status == 304:
        return Fetched(None, etag, wait)
    if status != 200:
        raise UpstreamUnavailable(f"{path}: unexpected HTTP {status}")
    if len(body) > max_bytes:
        raise BundleError("too_large", f"the served bundle is larger than {max_bytes} bytes")
    return Fetched(body, lowered.get("etag"), wait)


def fetch_url(url: str, cfg: Config, max_bytes: int) -> bytes:
    """Download a bundle from an https URL (a bare cloud URL means its newest bundle)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" or not parts.netloc:
        raise ConfigError("a rules URL must be an https:// URL")
    origin = f"https://{parts.netloc}"
    path = parts.path if parts.path not in {"", "/"} else RULES_PATH
    path += f"?{parts.query}" if parts.query else ""
    up = cfg.upstream
    same = up.url and urllib.parse.urlsplit(up.url).netloc == parts.netloc
    settings = ClientSettings(
        url=origin,
        ca_file=up.ca_file if same else "",
        pins=up.pin_sha256 if same else (),
        timeout=up.timeout,
    )
    with UpstreamClient(settings) as client:
        fetched = fetch_latest(client, None, max_bytes, path)
    if fetched.body is None:
        raise BundleError("fetch_failed", "the server has no bundle to offer")
    return fetched.body


def _minimum_wait(value: str | None) -> float:
    try:
        seconds = float(value) if value is not None else 0.0
    except ValueError:
        return 0.0
    return 0.0 if math.isnan(seconds) else min(max(seconds, 0.0), _MAX_WAIT)
