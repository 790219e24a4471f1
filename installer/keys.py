"""The install's keys: the master secret, the data key, and crypto-shredding them.

The data key comes from the encrypted local store (``agent.governance.vault.DataKey``) when this
build has it; otherwise the same file (32 random bytes, 0600, ``<state dir>/data.key``) is created
here, so an install made before the store existed has its key already.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from agent.minimize import MasterSecret

__all__ = ["DATA_KEY", "MASTER_KEY", "create_data_key", "create_master_secret", "shred"]

MASTER_KEY = "master.key"
DATA_KEY = "data.key"
_KEY_BYTES = 32


def create_master_secret(state_dir: Path) -> None:
    """Create ``master.key`` (0600, 256 random bits) in ``state_dir``."""
    MasterSecret.load_or_create(state_dir)


def create_data_key(state_dir: Path) -> None:
    """Create ``data.key`` (0600, 256 random bits) in ``state_dir``."""
    try:
        from agent.governance.vault import DataKey  # noqa: PLC0415 - the store may not be in this build
    except ImportError:
        _create_key_file(state_dir / DATA_KEY)
        return
    DataKey.load_or_create(state_dir)


def _create_key_file(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_bytes(_KEY_BYTES))
        fh.flush()
        os.fsync(fh.fileno())


def shred(path: Path) -> bool:
    """Overwrite a key file with random bytes, sync and unlink it; False when it was not there."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False
    try:
        os.pwrite(fd, secrets.token_bytes(max(os.fstat(fd).st_size, _KEY_BYTES)), 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()
    return True
