"""Retry as a value: exponential backoff with full jitter, honouring Retry-After, bounded."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before attempt ``n`` (0-based failures so far): uniform in [0, min(cap, base * 2**n)].

    Full jitter (the AWS architecture note's recommendation) spreads a fleet's retries after an
    outage instead of synchronizing them. A server's ``Retry-After`` is a floor, capped at ``cap``.
    """

    base: float = 1.0
    cap: float = 300.0

    def delay(
        self, failures: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait after ``failures`` consecutive failures."""
        ceiling = min(self.cap, self.base * (2 ** min(failures, 30)))
        jittered = (rng or _RNG).uniform(0.0, ceiling)
        if retry_after is not None:
            return min(self.cap, max(jittered, retry_after))
        return jittered


_RNG = random.SystemRandom()
