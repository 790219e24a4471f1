"""The answers file of ``--unattended`` installs on managed fleets.

::

    country = "DE"                      # ISO 3166-1 alpha-2, for the minimum-age table
    age_attested_by = "organisation"    # the only accepted value: the administrator attests
    attestation = "..."                 # the administrator's attestation text, recorded by its SHA-256

    [purposes]                          # every optional purpose, explicitly true or false
    threat_research = false
    product_analytics = false

There are no defaults for purposes: a missing one is an error, never a yes. An unknown key, a wrong
type or a contract purpose listed as a choice is an error that names the key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import ConfigError
from agent.governance import Purposes

__all__ = ["Answers", "load_answers", "optional_purposes"]

_TOP = ("country", "age_attested_by", "attestation", "purposes")
_COUNTRY = re.compile(r"[A-Z]{2}")
_MAX_ATTESTATION = 4000


@dataclass(frozen=True, slots=True)
class Answers:
    """A checked answers file."""

    country: str
    attestation: str
    choices: Mapping[str, bool]


def optional_purposes(purposes: Purposes) -> list[str]:
    """The purposes a user chooses (every one not resting on the contract), in file order."""
    return [p.name for p in purposes.purposes.values() if p.basis != "contract"]


def load_answers(path: Path, purposes: Purposes) -> Answers:
    """Read and check an answers file against the declared purposes."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"answers file not found: {path}") from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"answers file {path}: {exc}") from exc
    return parse_answers(raw, purposes, str(path))


def parse_answers(raw: dict[str, Any], purposes: Purposes, where: str) -> Answers:
    """Check parsed TOML; every error names the key."""
    for key in raw:
        if key not in _TOP:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(_TOP)})")
    country = _string(raw, "country", where)
    if not _COUNTRY.fullmatch(country):
        raise ConfigError(
            f"{where}: country must be a two-letter ISO 3166-1 code such as 'DE', not {country!r}"
        )
    by = _string(raw, "age_attested_by", where)
    if by != "organisation":
        raise ConfigError(
            f'{where}: age_attested_by must be "organisation" (the administrator attests that the'
            " users of this device may use it); an unattended install cannot ask anyone's age"
        )
    attestation = _string(raw, "attestation", where)
    if not attestation.strip() or len(attestation) > _MAX_ATTESTATION:
        raise ConfigError(
            f"{where}: attestation must be the administrator's text (1-{_MAX_ATTESTATION} characters)"
        )
    return Answers(country=country, attestation=attestation, choices=_choices(raw, purposes, where))


def _string(raw: dict[str, Any], key: str, where: str) -> str:
    if key not in raw:
        raise ConfigError(f"{where}: {key} is missing")
    value = raw[key]
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a string, not {_type(value)}")
    return value


def _choices(raw: dict[str, Any], purposes: Purposes, where: str) -> dict[str, bool]:
    optional = optional_purposes(purposes)
    table = raw.get("purposes")
    if table is None:
        raise ConfigError(f"{where}: purposes is missing: set {', '.join(f'purposes.{n}' for n in optional)}")
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: purposes must be a table, not {_type(table)}")
    for name, value in table.items():
        declared = purposes.purposes.get(name)
        if declared is None:
            raise ConfigError(
                f"{where}: unknown key 'purposes.{name}' (optional purposes: {', '.join(optional)})"
            )
        if declared.basis == "contract":
            raise ConfigError(
                f"{where}: purposes.{name} rests on the contract; it is not a choice: remove the key"
            )
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: purposes.{name} must be true or false, not {_type(value)}")
    for name in optional:
        if name not in table:
            raise ConfigError(
                f"{where}: purposes.{name} is missing: every optional purpose needs an explicit true or"
                " false (a missing answer is never a yes)"
            )
    return {name: table[name] for name in optional}


def _type(value: object) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)
