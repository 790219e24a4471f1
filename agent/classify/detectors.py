"""Personal-data detectors over text: counts of validated findings per entity type.

Found values stay in memory only, inside the detector that validated them; nothing is logged or returned
but the counts. The detectors live in :mod:`agent.classify.pii`, one module per family of entities.
"""

from __future__ import annotations

from agent.classify.pii import ENTITY_TYPES, detect

__all__ = ["ENTITY_TYPES", "detect"]
