"""Pytest fixtures of the installer tests (the helpers themselves are in ``setup_support``).

This is a plugin module, not a conftest.py (a conftest.py here would shadow tests/conftest.py for the
modules that ``from conftest import ...``). Test modules load it with
``pytest_plugins = ["setup_fixtures"]`` and import helpers from ``setup_support``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from setup_support import ROOT, Pty, SetupEnv, make_setup_env


@pytest.fixture
def setup_env(tmp_path: Path) -> SetupEnv:
    """A fresh private home and an empty prefix path for one test."""
    return make_setup_env(tmp_path)


@pytest.fixture
def pty_setup(setup_env: SetupEnv):
    """Start ``python -m installer ARGS`` on a real pty; every session is closed after the test."""
    sessions: list[Pty] = []

    def start(*args: str) -> Pty:
        session = Pty([sys.executable, "-m", "installer", *args], setup_env.env, ROOT)
        sessions.append(session)
        return session

    yield start
    for session in sessions:
        session.close()
