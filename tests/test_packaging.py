"""Packaging: every agent package is installed, and the bundled rules go with it."""

from __future__ import annotations

import tomllib

from conftest import ROOT


def test_every_package_is_listed():
    """Each directory under agent/ with an __init__.py is in pyproject's explicit package list."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "agent").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    assert "agent.bundled_rules" in listed
