"""Governance test helpers: the bundled purposes as an editable document, a settable clock, raw DB access."""

from __future__ import annotations

import copy
import sqlite3
import tomllib
from pathlib import Path
from typing import Any

from agent.config import bundled_rules_dir
from agent.governance import Purposes

BUNDLED: dict[str, Any] = tomllib.loads((bundled_rules_dir() / "purposes.toml").read_text(encoding="utf-8"))
DAY = 86_400
KEY = bytes(range(32))
T0 = 1_800_000_000  # 2027-01-15


class Clock:
    """A clock the test sets: ``clock()`` returns ``clock.now``."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def doc() -> dict[str, Any]:
    """A deep copy of the bundled purposes file, parsed, to edit."""
    return copy.deepcopy(BUNDLED)


def purposes(raw: dict[str, Any] | None = None) -> Purposes:
    """Purposes from ``raw`` (default: the bundled file)."""
    return Purposes.from_dict(raw if raw is not None else doc(), "purposes.toml")


def raw_db(path: Path) -> sqlite3.Connection:
    """A plain connection to the store, with the ledger's append-only triggers removed (as an attacker can)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TRIGGER IF EXISTS consent_ledger_no_update")
    db.execute("DROP TRIGGER IF EXISTS consent_ledger_no_delete")
    return db
