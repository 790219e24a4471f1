"""The neutral age gate: the minimum-age table, a strict date-of-birth parser, and the retry-block marker.

The date of birth is parsed, compared and dropped: nothing here stores, logs or returns it beyond the
caller's stack frame. A malformed entry (empty, text, an impossible or future date, a year before
``today - MAX_AGE_YEARS``, anything too long) is ``None``, so every one of them gets the same
re-prompt. A valid date that fails the check leaves a retry-block marker, with the time until which
setup refuses, in two places: the install's state dir and the user's cache dir, so that deleting the
one in the install dir is not the obvious way round it. A marker that cannot be read counts as set.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import ConfigError

__all__ = [
    "MARKER_NAME",
    "MAX_AGE_YEARS",
    "AgePolicy",
    "RetryBlock",
    "age_in_years",
    "bundled_ages_path",
    "parse_birth_date",
]

MARKER_NAME = "age-retry-block"
MAX_AGE_YEARS = 130
_MAX_INPUT = 32  # characters; a longer entry is malformed without being looked at
_ISO = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})")
_DOTTED = re.compile(r"([0-9]{1,2})\.([0-9]{1,2})\.([0-9]{4})")
_COUNTRY = re.compile(r"[A-Z]{2}")
_MAX_TIME = 1 << 40  # seconds since the epoch; a larger "time" in a marker is an edit
_TOP = {"policy_version", "default_min_age", "retry_block_hours", "min_age"}


def bundled_ages_path() -> Path:
    """The minimum-age table shipped with the installer (``installer/ages.toml``)."""
    return Path(__file__).resolve().parent / "ages.toml"


@dataclass(frozen=True, slots=True)
class AgePolicy:
    """Minimum ages by country, the default, and how long a failed check blocks a retry."""

    version: int
    default_min_age: int
    retry_block_hours: float
    min_ages: Mapping[str, int]

    @classmethod
    def load(cls, path: Path | None = None) -> AgePolicy:
        """Read and check an ages table; errors name the file and the key."""
        path = path or bundled_ages_path()
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"age policy {path}: {exc}") from exc
        return cls.from_dict(raw, str(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str) -> AgePolicy:
        """Build from parsed TOML; an unknown key or a wrong type is a :class:`ConfigError`."""
        for key in raw:
            if key not in _TOP:
                raise ConfigError(f"{where}: unknown key {key}")
        version = _int(raw, "policy_version", where, 1, 1_000_000)
        default = _int(raw, "default_min_age", where, 1, 30)
        hours = raw.get("retry_block_hours")
        if not isinstance(hours, (int, float)) or isinstance(hours, bool) or not 0 <= hours <= 24 * 366:
            raise ConfigError(f"{where}: retry_block_hours must be a number of hours from 0 to 8784")
        table = raw.get("min_age", {})
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: min_age must be a table of country = age")
        ages = {}
        for country in table:
            if not _COUNTRY.fullmatch(country):
                raise ConfigError(f"{where}: min_age.{country} is not a two-letter country code such as DE")
            ages[country] = _int(table, f"min_age.{country}", where, 1, 30, value=table[country])
        return cls(version=version, default_min_age=default, retry_block_hours=float(hours), min_ages=ages)

    def min_age(self, country: str) -> int:
        """The minimum age for ``country`` (an ISO 3166-1 alpha-2 code), else the default."""
        return self.min_ages.get(country.upper(), self.default_min_age)

    @property
    def retry_block_seconds(self) -> float:
        """How long a failed check blocks a retry, in seconds."""
        return self.retry_block_hours * 3600.0


def _int(table: dict[str, Any], key: str, where: str, low: int, high: int, *, value: object = None) -> int:
    value = table.get(key) if value is None else value
    if type(value) is not int or not low <= value <= high:
        raise ConfigError(f"{where}: {key} must be an integer from {low} to {high}")
    return value


def parse_birth_date(text: str, today: dt.date) -> dt.date | None:
    """The date in ``text`` (``YYYY-MM-DD`` or ``DD.MM.YYYY``), or ``None`` for anything malformed."""
    entry = text.strip()
    if not entry or len(entry) > _MAX_INPUT:
        return None
    if match := _ISO.fullmatch(entry):
        year, month, day = (int(g) for g in match.groups())
    elif match := _DOTTED.fullmatch(entry):
        day, month, year = (int(g) for g in match.groups())
    else:
        return None
    try:
        born = dt.date(year, month, day)
    except ValueError:  # 31 February, month 13, year 0
        return None
    if born > today or today.year - born.year > MAX_AGE_YEARS:
        return None
    return born


def age_in_years(born: dt.date, today: dt.date) -> int:
    """Completed years of life on ``today`` (someone born on 29 February turns a year older on 1 March)."""
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


@dataclass(frozen=True, slots=True)
class RetryBlock:
    """The retry-block marker, kept in several places; setup is blocked while any copy says so."""

    paths: tuple[Path, ...]

    def blocked_until(self, now: float, period: float) -> float | None:
        """The latest time any copy blocks until, when that is after ``now``; else ``None``."""
        until = [t for t in (_read_marker(p, period) for p in self.paths) if t is not None]
        latest = max(until, default=None)
        return latest if latest is not None and latest > now else None

    def write(self, until: float, policy_version: int) -> list[Path]:
        """Write the marker (0600) to every place; return the places written (a failing one is skipped)."""
        body = json.dumps({"blocked_until": int(until), "policy_version": policy_version}) + "\n"
        return [path for path in self.paths if _write_marker(path, body)]

    def missing(self) -> list[Path]:
        """The places that hold no marker."""
        return [path for path in self.paths if not path.exists()]

    def clear_expired(self, now: float, period: float) -> list[Path]:
        """Remove the copies whose block has ended; return what was removed."""
        removed = []
        for path in self.paths:
            until = _read_marker(path, period)
            if until is not None and until <= now:
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed


def _read_marker(path: Path, period: float) -> float | None:
    """The time a marker blocks until; an unreadable or edited marker blocks a full period from its mtime."""
    try:
        stat = path.stat()
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError):
        return _mtime_block(path, period)
    until = data.get("blocked_until") if isinstance(data, dict) else None
    if type(until) is not int or not 0 <= until < _MAX_TIME:
        return _mtime_block(path, period)
    return max(float(until), stat.st_mtime + period) if until < stat.st_mtime else float(until)


def _mtime_block(path: Path, period: float) -> float | None:
    try:
        return path.stat().st_mtime + period
    except OSError:
        return None


def _write_marker(path: Path, body: str) -> bool:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    except OSError:
        return False
    return True
