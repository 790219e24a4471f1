"""The install's keys: the master secret, the data key, and crypto-shredding them.

The keys are the agent's own (``agent.minimize.MasterSecret``, ``agent.governance.vault.DataKey``):
the installer creates them where the agent will look, and shreds them on uninstall.
"""

from __future__ import annotations

from pathlib import Path

from agent.governance.vault import KEY_FILE, DataKey, shred_file
from agent.minimize import MasterSecret

__all__ = ["DATA_KEY", "MASTER_KEY", "create_data_key", "create_master_secret", "shred"]

MASTER_KEY = "master.key"
DATA_KEY = KEY_FILE


def create_master_secret(state_dir: Path) -> None:
    """Create ``master.key`` (0600, 256 random bits) in ``state_dir``."""
    MasterSecret.load_or_create(state_dir)


def create_data_key(state_dir: Path) -> None:
    """Create ``data.key`` (0600, 256 random bits) in ``state_dir``."""
    DataKey.load_or_create(state_dir)


def shred(path: Path) -> bool:
    """Overwrite a key file with random bytes, sync and unlink it; False when it was not there."""
    return shred_file(path)
