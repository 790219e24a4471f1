"""The local store: verdict cache and outbox, in one SQLite file."""

from agent.outbox.store import Store, transaction

__all__ = ["Store", "transaction"]
