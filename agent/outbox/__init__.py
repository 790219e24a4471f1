"""The local store: verdict cache and outbox, in one SQLite file."""

from agent.outbox.store import CachedVerdict, Store

__all__ = ["CachedVerdict", "Store"]
