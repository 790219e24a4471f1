"""Fixtures the governance tests share: a settable clock, the state database path, an open ledger.

A plugin module, not a conftest.py (see tests/cloud/cloud_fixtures.py for why); test modules load it
with ``pytest_plugins = ["governance_fixtures"]``. Plain helpers stay in ``governance_helpers``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from governance_helpers import KEY, Clock, purposes  # type: ignore[import-not-found, unused-ignore]

from agent.governance import ConsentLedger


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "agent.db"


@pytest.fixture
def ledger(db_path: Path, clock: Clock) -> Iterator[ConsentLedger]:
    with ConsentLedger(db_path, KEY, purposes(), clock) as led:
        yield led
