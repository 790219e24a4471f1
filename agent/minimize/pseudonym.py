"""Keyed pseudonyms: ``HMAC-SHA256(HKDF(master_secret, domain), period)``.

The master secret is 256 random bits, created on first use in a 0600 file under the state dir. It
never leaves the device and is never derived from hardware. Each use gets its own key through HKDF
(one ``info`` label per domain), so a key for log tokens cannot be turned into the device pseudonym.
The period rotates (monthly by default), so records of two periods cannot be linked without the
secret. Deleting the secret crypto-shreds every pseudonym.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agent.errors import ConfigError

__all__ = ["SECRET_BYTES", "MasterSecret", "load_or_create_secret", "period_label"]

SECRET_BYTES = 32
_FILE = "master.key"


def period_label(when: dt.datetime, period: str) -> str:
    """Return the rotation period containing ``when`` (UTC): ``2026-11``, ``2026-W48`` or ``2026-11-29``."""
    when = when.astimezone(dt.UTC)
    if period == "month":
        return f"{when.year:04d}-{when.month:02d}"
    if period == "week":
        year, week, _ = when.isocalendar()
        return f"{year:04d}-W{week:02d}"
    if period == "day":
        return when.strftime("%Y-%m-%d")
    raise ConfigError(f"unknown pseudonym period {period!r}")


class MasterSecret:
    """The install's master secret, loaded (or created) from ``state_dir``."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) != SECRET_BYTES:
            raise ConfigError("master secret must be 32 bytes")
        self._secret = secret

    @classmethod
    def load_or_create(cls, state_dir: Path) -> MasterSecret:
        """Read ``state_dir/master.key``, creating it (0600, exclusively) when absent."""
        return cls(load_or_create_secret(state_dir / _FILE, SECRET_BYTES, "master secret"))

    def key(self, domain: str) -> bytes:
        """Derive the 32-byte key for ``domain`` (``verdicts``, ``logs``, ...) with HKDF-SHA256."""
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=domain.encode())
        return hkdf.derive(self._secret)

    def pseudonym(self, domain: str, period: str) -> str:
        """Return the pseudonym for ``domain`` in ``period``: 128 bits of HMAC-SHA256, hex."""
        mac = hmac.new(self.key(domain), period.encode(), hashlib.sha256)
        return mac.hexdigest()[:32]


def load_or_create_secret(path: Path, size: int, what: str) -> bytes:
    """Read the ``size``-byte secret at ``path``, creating it (random, 0600, exclusively) when absent.

    One place for every key file of the install (the master secret, the data key): it is refused
    when others may read it, and when it is not exactly ``size`` bytes.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except (FileExistsError, NotADirectoryError) as exc:
        raise ConfigError(
            f"the state directory {path.parent} is not a directory (it comes from ENDPOINT_AGENT_HOME, "
            "else the platform's data directory)"
        ) from exc
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return _read_secret(path, size, what)
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_bytes(size))
        fh.flush()
        os.fsync(fh.fileno())
    return _read_secret(path, size, what)


def _read_secret(path: Path, size: int, what: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a FIFO there must not block
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc.strerror}") from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ConfigError(f"the {what} {path} is not a regular file")
    with os.fdopen(fd, "rb") as fh:
        if mode & 0o077:
            raise ConfigError(f"{what} {path} is readable by others; expected mode 0600")
        data = fh.read(size + 1)
    if len(data) != size:
        raise ConfigError(f"{what} {path} is damaged (expected {size} bytes)")
    return data
