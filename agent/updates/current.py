"""Which installed rules are in force: the ``current`` link under ``<state dir>/rules``.

Kept apart from :mod:`agent.updates.install` so that finding the rules in force (every scan does)
does not load the bundle verifier, its crypto and the update client.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["installed_rules_dir", "read_link", "rules_root"]


def rules_root(state_dir: Path) -> Path:
    """Where installed versions live."""
    return state_dir / "rules"


def read_link(root: Path, name: str) -> str | None:
    """The version a link under ``root`` names (``current``, ``previous``), or None."""
    try:
        target = (root / name).readlink().as_posix()
    except OSError:
        return None
    return target if target.isdigit() else None


def installed_rules_dir(state_dir: Path) -> Path | None:
    """The directory of the installed rules in force, or None when none is installed."""
    root = rules_root(state_dir)
    name = read_link(root, "current")
    if name is None or not (root / name).is_dir():
        return None
    return root / name
