"""Hypothesis settings for tests/fuzz: a fast run by default, a long one with ``HYPOTHESIS_PROFILE=deep``.

``FUZZ`` follows the profile named in the environment, so ``HYPOTHESIS_PROFILE=deep pytest tests/fuzz``
runs every target here for many more examples without touching the rest of the suite. A ``deep``
profile registered by ``tests/conftest.py`` wins over the one registered here.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis.errors import InvalidArgument

__all__ = ["DEEP", "FUZZ"]

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
DEEP = os.environ.get("HYPOTHESIS_PROFILE", "") == "deep"

try:
    settings.get_profile("deep")
except InvalidArgument:
    settings.register_profile(
        "deep", max_examples=20_000, deadline=None, database=None, suppress_health_check=_QUIET
    )

_DEEP = settings.get_profile("deep")
FUZZ = settings(
    _DEEP if DEEP else None,
    max_examples=_DEEP.max_examples if DEEP else 60,
    deadline=None,
    database=None,
    suppress_health_check=_QUIET,
)
