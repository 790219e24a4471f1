"""Purposes of processing (``rules/purposes.toml``): legal basis, payload fields, recipients, retention.

Every payload that leaves the device names a purpose declared here. A purpose has a legal basis
(contract, Art. 6(1)(b); legitimate interest, 6(1)(f); consent, 6(1)(a)), the payload kinds and
wire fields it may carry, its recipients (a recipient outside the EU/EEA must name its transfer
mechanism, Art. 44-46), its retention, and for consent its notice and maximum consent age. Loading
is strict: an unknown key, a wrong type or an undeclared transfer is a :class:`ConfigError` naming
the key. ``Purpose.digest`` is a content hash of the purpose and the controller; the consent ledger
records it at grant time, so a changed purpose stops until the user consents again.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from agent.config import Config, bundled_rules_dir
from agent.errors import ConfigError
from agent.minimize.analytics import ANALYTICS_FIELDS
from agent.minimize.wire import WIRE_FIELDS

__all__ = [
    "ARTICLES",
    "BASES",
    "EEA",
    "WIRE_SCHEMAS",
    "Controller",
    "Purpose",
    "Purposes",
    "Recipient",
    "load_purposes",
    "purposes_path",
    "render_notice",
]

Basis = Literal["contract", "legitimate_interest", "consent"]
BASES: tuple[Basis, ...] = ("contract", "legitimate_interest", "consent")
ARTICLES: Mapping[str, str] = {
    "contract": "GDPR Art. 6(1)(b)",
    "legitimate_interest": "GDPR Art. 6(1)(f)",
    "consent": "GDPR Art. 6(1)(a)",
}
# EU member states, then Iceland, Liechtenstein and Norway (EEA).
_EU = "AT BE BG HR CY CZ DK EE FI FR DE GR IE IT LV LT LU MT NL PL PT RO SK SI ES SE"
EEA = frozenset(f"{_EU} IS LI NO".split())
# Countries with an EU adequacy decision (Art. 45); for the US only organisations under the DPF.
_ADEQUATE = frozenset("AD AR CA CH FO GB GG IL IM JE JP KR NZ US UY".split())  # noqa: SIM905 - as above
_TRANSFERS = ("adequacy", "scc", "bcr")
# Payload kind -> the fields of its wire schema; the kinds name the transparency log's entries.
WIRE_SCHEMAS: Mapping[str, tuple[str, ...]] = {
    "verdicts": WIRE_FIELDS,
    "reputation_search": ("prefixes",),  # the receiver's SearchRequest; see the schema test
    "analytics_report": ANALYTICS_FIELDS,  # agent.minimize.analytics.AnalyticsReport (local DP)
}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_TOP = {"policy_version", "controller", "purposes"}
_PURPOSE_KEYS = {
    "basis",
    "description",
    "payloads",
    "recipients",
    "retention_days",
    "max_consent_age_days",
    "notice",
    "notice_file",
}


@dataclass(frozen=True, slots=True)
class Controller:
    """Who decides on the processing, and how to reach them."""

    name: str
    contact: str


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who receives a purpose's payloads; ``transfer`` is empty inside the EU/EEA."""

    name: str
    category: str
    country: str
    transfer: str = ""


@dataclass(frozen=True, slots=True)
class Purpose:
    """One declared purpose of processing."""

    name: str
    basis: Basis
    description: str
    payloads: Mapping[str, tuple[str, ...]]
    recipients: tuple[Recipient, ...]
    retention_days: int
    max_consent_age_days: int | None
    notice: str
    digest: str

    @property
    def article(self) -> str:
        """The GDPR provision of the legal basis, e.g. ``GDPR Art. 6(1)(a)``."""
        return ARTICLES[self.basis]

    @property
    def fields(self) -> frozenset[str]:
        """Every wire field this purpose may carry, over all its payload kinds."""
        return frozenset(f for fields in self.payloads.values() for f in fields)


@dataclass(frozen=True, slots=True)
class Purposes:
    """A loaded purposes file: its policy version, the controller and the purposes by name."""

    version: int
    controller: Controller
    purposes: Mapping[str, Purpose]

    @classmethod
    def load(cls, path: Path) -> Purposes:
        """Read and check a purposes file; errors name the file and the key."""
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"purposes {path}: {exc}") from exc
        return cls.from_dict(raw, str(path), path.parent)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str, base_dir: Path | None = None) -> Purposes:
        """Build from parsed TOML; ``base_dir`` resolves relative ``notice_file`` paths."""
        _only(raw, _TOP, where, "")
        version = raw.get("policy_version")
        if type(version) is not int or version < 1:
            raise ConfigError(f"{where}: policy_version must be a positive integer")
        controller = _controller(raw.get("controller"), where)
        table = raw.get("purposes")
        if not isinstance(table, dict) or not table:
            raise ConfigError(f"{where}: purposes must be a table declaring at least one purpose")
        purposes = {
            name: _purpose(name, body, controller, where, base_dir or Path()) for name, body in table.items()
        }
        return cls(version=version, controller=controller, purposes=purposes)

    def get(self, name: str) -> Purpose:
        """The purpose called ``name``; a :class:`ConfigError` when none is declared."""
        try:
            return self.purposes[name]
        except KeyError:
            raise ConfigError(f"undeclared purpose {name!r}") from None


def purposes_path(config: Config) -> Path:
    """The purposes file in force: ``[privacy] purposes_file`` when set, else the bundled one."""
    configured = str(getattr(config.privacy, "purposes_file", "") or "")  # the option may not exist yet
    return Path(configured).expanduser() if configured else bundled_rules_dir() / "purposes.toml"


def load_purposes(config: Config) -> Purposes:
    """Load the purposes file in force for ``config``."""
    return Purposes.load(purposes_path(config))


def render_notice(purposes: Purposes, purpose: Purpose) -> str:
    """The exact notice shown before a grant: controller, purpose, data, recipients, how to withdraw."""
    data = ", ".join(sorted(purpose.fields)) or "no fields declared yet (nothing of this purpose can leave)"
    recipients = "; ".join(_describe(r) for r in purpose.recipients) or "none declared"
    stop = "withdraw" if purpose.basis == "consent" else "object"
    lines = [
        f"Purpose: {purpose.name} ({purpose.basis.replace('_', ' ')}, {purpose.article})",
        f"Controller: {purposes.controller.name} <{purposes.controller.contact}>",
        f"What for: {purpose.description}",
        f"Wire fields: {data}",
        f"Recipients: {recipients}",
        f"Kept by recipients for: {purpose.retention_days} days",
    ]
    if purpose.max_consent_age_days is not None:
        lines.append(f"Consent is asked again after: {purpose.max_consent_age_days} days")
    if purpose.basis == "contract":  # necessary for the service itself: it ends with the service
        lines.append("To stop: uninstall the agent (endpoint-agent-setup uninstall)")
    else:
        lines.append(f"To stop: endpoint-agent consent {stop} {purpose.name}")
    lines.append(f"Policy version: {purposes.version}")
    if purpose.notice:
        lines.extend(["", purpose.notice.strip()])
    return "\n".join(lines) + "\n"


def _describe(recipient: Recipient) -> str:
    transfer = f", transfer: {recipient.transfer}" if recipient.transfer else ""
    return f"{recipient.name} ({recipient.category}; {recipient.country}{transfer})"


def _only(table: object, allowed: set[str], where: str, prefix: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: {prefix.rstrip('.') or 'the file'} must be a table")
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {prefix}{key}")
    return table


def _text(table: dict[str, Any], key: str, where: str, prefix: str, *, required: bool = True) -> str:
    value = table.get(key, "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise ConfigError(f"{where}: {prefix}{key} must be a non-empty string")
    return value


def _days(table: dict[str, Any], key: str, where: str, prefix: str) -> int:
    value = table.get(key)
    if type(value) is not int or value < 1:
        raise ConfigError(f"{where}: {prefix}{key} must be a positive integer (days)")
    return value


def _controller(table: object, where: str) -> Controller:
    body = _only(table, {"name", "contact"}, where, "controller.")
    return Controller(
        name=_text(body, "name", where, "controller."), contact=_text(body, "contact", where, "controller.")
    )


def _purpose(name: str, table: object, controller: Controller, where: str, base_dir: Path) -> Purpose:
    prefix = f"purposes.{name}."
    if not _NAME.match(name) or name == "install":  # "install" names the ledger's age-check entries
        raise ConfigError(
            f"{where}: purposes.{name} is not a valid purpose name (a-z, 0-9, _; not 'install')"
        )
    body = _only(table, _PURPOSE_KEYS, where, prefix)
    basis = body.get("basis")
    if basis not in BASES:
        raise ConfigError(f"{where}: {prefix}basis must be one of {', '.join(BASES)}")
    is_consent = basis == "consent"
    if ("max_consent_age_days" in body) != is_consent:
        need = "is required for" if is_consent else "is only for"
        raise ConfigError(f"{where}: {prefix}max_consent_age_days {need} basis 'consent'")
    fields: dict[str, Any] = {
        "name": name,
        "basis": cast("Basis", basis),
        "description": _text(body, "description", where, prefix),
        "payloads": _payloads(body.get("payloads", {}), where, prefix + "payloads."),
        "recipients": _recipients(body.get("recipients", []), where, prefix + "recipients"),
        "retention_days": _days(body, "retention_days", where, prefix),
        "max_consent_age_days": _days(body, "max_consent_age_days", where, prefix) if is_consent else None,
        "notice": _notice(body, where, prefix, base_dir, required=is_consent),
    }
    return Purpose(**fields, digest=_digest(controller, fields))


def _payloads(table: object, where: str, prefix: str) -> dict[str, tuple[str, ...]]:
    body = _only(table, set(WIRE_SCHEMAS), where, prefix)
    out: dict[str, tuple[str, ...]] = {}
    for kind, fields in body.items():
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise ConfigError(f"{where}: {prefix}{kind} must be a list of field names")
        unknown = [f for f in fields if f not in WIRE_SCHEMAS[kind]]
        if unknown:
            raise ConfigError(f"{where}: {prefix}{kind} names fields its schema lacks: {unknown}")
        if len(set(fields)) != len(fields):
            raise ConfigError(f"{where}: {prefix}{kind} lists a field twice")
        out[kind] = tuple(fields)
    return out


def _recipients(items: object, where: str, prefix: str) -> tuple[Recipient, ...]:
    if not isinstance(items, list):
        raise ConfigError(f"{where}: {prefix} must be an array of tables ([[{prefix}]])")
    return tuple(_recipient(item, where, f"{prefix}[{i}].") for i, item in enumerate(items))


def _recipient(item: object, where: str, prefix: str) -> Recipient:
    body = _only(item, {"name", "category", "country", "transfer"}, where, prefix)
    country = body.get("country")
    if not isinstance(country, str) or not _COUNTRY.match(country):
        raise ConfigError(f"{where}: {prefix}country must be an ISO 3166-1 alpha-2 code such as 'DE'")
    transfer = body.get("transfer", "")
    if country in EEA and "transfer" in body:
        raise ConfigError(f"{where}: {prefix}transfer must be left out: {country} is in the EU/EEA")
    if country not in EEA and transfer not in _TRANSFERS:
        raise ConfigError(
            f"{where}: {prefix}transfer is required outside the EU/EEA ({country}):"
            f" one of {', '.join(_TRANSFERS)}"
        )
    if transfer == "adequacy" and country not in _ADEQUATE:
        raise ConfigError(f"{where}: {prefix}transfer 'adequacy': {country} has no EU adequacy decision")
    return Recipient(
        name=_text(body, "name", where, prefix),
        category=_text(body, "category", where, prefix),
        country=country,
        transfer=str(transfer),
    )


def _notice(body: dict[str, Any], where: str, prefix: str, base_dir: Path, *, required: bool) -> str:
    if "notice" in body and "notice_file" in body:
        raise ConfigError(f"{where}: {prefix}notice and {prefix}notice_file exclude each other")
    if "notice_file" in body:
        name = _text(body, "notice_file", where, prefix)
        try:
            text = (base_dir / name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{where}: {prefix}notice_file cannot be read: {exc}") from exc
    else:
        text = _text(body, "notice", where, prefix, required=False)
    if required and not text.strip():
        raise ConfigError(f"{where}: {prefix}notice (or notice_file) is required for basis 'consent'")
    return text


def _digest(controller: Controller, fields: dict[str, Any]) -> str:
    """SHA-256 over the controller and everything a user was told about this purpose."""
    doc = {
        "controller": [controller.name, controller.contact],
        **fields,
        "payloads": {k: list(v) for k, v in sorted(fields["payloads"].items())},
        "recipients": [[r.name, r.category, r.country, r.transfer] for r in fields["recipients"]],
    }
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()
