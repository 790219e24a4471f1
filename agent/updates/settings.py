"""What rule updates are configured with: pinned keys, the freshness bound and the poll schedule."""

from __future__ import annotations

from dataclasses import dataclass, fields

from agent.config import UpdatesConfig
from agent.updates.bundle import DEFAULT_LIMITS, BundleLimits

__all__ = ["UpdateSettings"]


@dataclass(frozen=True, slots=True)
class UpdateSettings(UpdatesConfig):
    """The ``[updates]`` options (the config section's fields and defaults) and the reader's limits.

    Attributes:
        enabled: the service polls the cloud for new bundles (needs ``upstream.url`` and a pinned key).
        pinned_keys: base64 raw Ed25519 public keys a bundle may be signed with (several: rotation).
        max_age_days: a bundle whose manifest is older is refused (a frozen or replayed feed).
        poll_interval: seconds between polls; the cloud's ``Minimum-Wait`` may lengthen it.
        poll_jitter: up to this many seconds, at random, added to every wait (and the first poll).
        limits: bounds on bundle size and members.
    """

    limits: BundleLimits = DEFAULT_LIMITS

    @classmethod
    def from_config(cls, cfg: object) -> UpdateSettings:
        """Read an ``updates`` section of the config when it has one (same field names), else defaults."""
        section = getattr(cfg, "updates", None)
        if section is None:
            return cls()
        names = [f.name for f in fields(cls) if f.name != "limits" and hasattr(section, f.name)]
        return cls(**{name: getattr(section, name) for name in names})
