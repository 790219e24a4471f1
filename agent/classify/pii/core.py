"""The detector run: every entity type over one text, counts only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.classify.pii.address import count_addresses
from agent.classify.pii.contact import count_emails, count_phones
from agent.classify.pii.dates import count_birth_dates
from agent.classify.pii.finance import count_cards, count_ibans
from agent.classify.pii.names import count_names
from agent.classify.pii.national import count_national_ids
from agent.classify.pii.text import MAX_FINDINGS, TextView, unescape
from agent.classify.pii.vcards import without_organisation_cards

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ENTITY_TYPES", "detect"]

ENTITY_TYPES: tuple[str, ...] = (
    "email",
    "phone",
    "iban",
    "payment_card",
    "national_id",
    "date_of_birth",
    "postal_address",
    "person_name",
)

_COUNTERS: dict[str, Callable[[TextView, int], int]] = {
    "email": count_emails,
    "phone": count_phones,
    "iban": count_ibans,
    "payment_card": count_cards,
    "national_id": count_national_ids,
    "date_of_birth": count_birth_dates,
    "postal_address": count_addresses,
    "person_name": count_names,
}


def detect(text: str) -> dict[str, int]:
    """Counts of validated personal-data findings per entity type (only types with count > 0).

    The values found are never kept: each detector returns a count and the matches go out of scope.
    Each count stops at ``MAX_FINDINGS``.

    Args:
        text: the extracted text of one object.

    Returns:
        Entity type to number of findings, for the types found at least once, in ``ENTITY_TYPES`` order.
    """
    if not text:
        return {}
    view = TextView(without_organisation_cards(unescape(text)))
    counts = {kind: _COUNTERS[kind](view, MAX_FINDINGS) for kind in ENTITY_TYPES}
    return {kind: count for kind, count in counts.items() if count > 0}
