"""Personal-data detectors over extracted text; :mod:`agent.classify.detectors` is the public face."""

from __future__ import annotations

from agent.classify.pii.core import ENTITY_TYPES, detect

__all__ = ["ENTITY_TYPES", "detect"]
