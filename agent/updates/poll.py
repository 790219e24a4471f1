"""The service's rules poller: ask the cloud on a jittered interval, install, tell the service to reload.

The first poll comes after a random delay of up to ``poll_jitter`` seconds (so a fleet restarted
together does not ask at once); each later wait is ``poll_interval`` plus up to ``poll_jitter``,
never less than the cloud's ``Minimum-Wait`` (or ``Retry-After`` on a 429/5xx). The ETag of the last
bundle handled, installed or refused, is kept in ``<state dir>/rules/feed.json`` with the agent
version, so a refused bundle is not downloaded again until the cloud serves another one or the agent
is upgraded.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import threading
from collections.abc import Callable
from pathlib import Path

import structlog

from agent import __version__
from agent.errors import AgentError, UpstreamUnavailable
from agent.updates.current import rules_root
from agent.updates.fetch import fetch_latest
from agent.updates.install import Installed, update
from agent.updates.manifest import BundleError
from agent.updates.settings import UpdateSettings
from agent.upstream import UpstreamClient

__all__ = ["RulesPoller"]

log = structlog.get_logger("endpoint-agent")
_FEED = "feed.json"


class RulesPoller:
    """Polls for bundles from its own thread; ``on_installed`` runs after each successful update.

    ``client_factory`` makes a client per poll (None: no cloud configured, nothing to do).
    """

    def __init__(
        self,
        client_factory: Callable[[], UpstreamClient | None],
        state_dir: Path,
        settings: UpdateSettings,
        on_installed: Callable[[Installed], object],
        rng: random.Random | None = None,
    ) -> None:
        self._client_factory = client_factory
        self._state_dir = state_dir
        self._settings = settings
        self._on_installed = on_installed
        self._rng = rng or random.Random(secrets.randbits(64))  # noqa: S311 - jitter, not a secret
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rules-updates", daemon=True)

    def start(self) -> None:
        """Start polling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current poll."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30.0)

    def _loop(self) -> None:
        wait = self._rng.uniform(0.0, self._settings.poll_jitter)
        while not self._stop.wait(wait):
            wait = self.poll_once()

    def next_delay(self) -> float:
        """The interval plus its random jitter."""
        return self._settings.poll_interval + self._rng.uniform(0.0, self._settings.poll_jitter)

    def poll_once(self) -> float:
        """Ask once, install what is new; return the seconds to wait before the next poll."""
        try:
            return max(self._poll(), self.next_delay())
        except UpstreamUnavailable as exc:
            log.warning("rules_poll_failed", error=str(exc))
            return max(exc.retry_after or 0.0, self.next_delay())
        except AgentError as exc:
            log.warning("rules_poll_failed", error=str(exc))
            return self.next_delay()

    def _poll(self) -> float:
        etag, client = self._etag(), self._client_factory()
        if client is None:  # no cloud configured
            return 0.0
        with client:
            fetched = fetch_latest(client, etag, self._settings.limits.max_bundle_bytes)
        if fetched.body is None:
            return fetched.minimum_wait
        try:
            installed = update(fetched.body, self._state_dir, self._settings)
        except BundleError:
            self._remember(fetched.etag)  # update() logged the refusal; this bundle will not change
            return fetched.minimum_wait
        self._remember(fetched.etag)
        self._on_installed(installed)
        return fetched.minimum_wait

    def _etag(self) -> str | None:
        try:
            held = json.loads((rules_root(self._state_dir) / _FEED).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(held, dict) or held.get("agent") != __version__:
            return None
        etag = held.get("etag")
        return etag if isinstance(etag, str) else None

    def _remember(self, etag: str | None) -> None:
        root = rules_root(self._state_dir)
        root.mkdir(parents=True, exist_ok=True, mode=0o755)
        tmp = root / f".{_FEED}.{secrets.token_hex(6)}"
        with tmp.open("x") as out:
            json.dump({"etag": etag, "agent": __version__}, out)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(root / _FEED)
