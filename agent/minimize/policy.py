"""The minimization policy (``rules/policy.toml``) and the stage that applies it.

``decide`` turns detections into a verdict; ``data_class`` applies privacy by default; ``minimize``
builds the upstream record allowed for (data class, verdict), or returns None. The record is built
from an allow-list of fields: anything the policy does not name is never copied.
"""

from __future__ import annotations

import datetime as dt
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import ConfigError
from agent.minimize.wire import SCHEMA_VERSION, Record, WireDetection
from agent.model import Classification, DataClass, Detection, ScanResult, Verdict, VerdictKind

__all__ = ["Identity", "Policy", "decide", "minimize", "size_bucket", "time_bucket"]

_VERDICTS = tuple(v.value for v in VerdictKind)
_FIELDS = frozenset({"sha256", "detections", "kind", "size_bucket", "reason"})
_KINDS = frozenset({"executable", "script", "document", "archive", "image", "text", "other"})


@dataclass(frozen=True, slots=True)
class Identity:
    """What every record of this scan carries: the period's pseudonym and the versions."""

    pseudonym: str
    engine_version: str
    rules_version: str


@dataclass(frozen=True, slots=True)
class Policy:
    """A loaded policy file."""

    version: int
    severity: dict[str, str]
    personal_kinds: frozenset[str]
    upstream: dict[str, dict[str, tuple[str, ...]]]
    actions: dict[str, str] = field(default_factory=dict)  # severity -> "report" | "quarantine"

    @classmethod
    def load(cls, path: Path) -> Policy:
        """Read and check a policy file; errors name the key."""
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"policy {path}: {exc}") from exc
        return cls.from_dict(raw, str(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str) -> Policy:
        """Build a policy from parsed TOML."""
        _only(raw, {"policy_version", "severity", "data_class", "upstream", "actions"}, where)
        severity = {str(k): _verdict(v, f"{where}: severity.{k}") for k, v in raw.get("severity", {}).items()}
        data_class = raw.get("data_class", {})
        _only(data_class, {"personal_kinds"}, f"{where}: data_class")
        kinds = frozenset(data_class.get("personal_kinds", []))
        if not kinds <= _KINDS:
            raise ConfigError(
                f"{where}: data_class.personal_kinds has unknown kinds {sorted(kinds - _KINDS)}"
            )
        upstream = {dc: _upstream(raw.get("upstream", {}), dc, where) for dc in ("personal", "non_personal")}
        version = raw.get("policy_version")
        if not isinstance(version, int) or version < 1:
            raise ConfigError(f"{where}: policy_version must be a positive integer")
        actions = _actions(raw.get("actions", {}), where)
        return cls(version, severity, kinds, upstream, actions)

    def fields(self, data_class: DataClass, verdict: VerdictKind) -> tuple[str, ...]:
        """The upstream fields allowed for this data class and verdict (empty: no record)."""
        return self.upstream[data_class.value].get(verdict.value, ())


def _only(table: object, allowed: set[str], where: str) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r}")


def _actions(table: object, where: str) -> dict[str, str]:
    """``[actions]``: what to do with a detection, per rule severity (default: report only)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: actions must be a table")
    for severity, action in table.items():
        if action not in ("report", "quarantine"):
            raise ConfigError(f"{where}: actions.{severity} must be 'report' or 'quarantine'")
    return {str(k): str(v) for k, v in table.items()}


def _verdict(value: object, where: str) -> str:
    if value not in ("malicious", "suspicious"):
        raise ConfigError(f"{where} must be 'malicious' or 'suspicious'")
    return str(value)


def _upstream(table: dict[str, Any], data_class: str, where: str) -> dict[str, tuple[str, ...]]:
    _only(table, {"personal", "non_personal"}, f"{where}: upstream")
    section = table.get(data_class, {})
    _only(section, set(_VERDICTS), f"{where}: upstream.{data_class}")
    out: dict[str, tuple[str, ...]] = {}
    for verdict, fields in section.items():
        if not isinstance(fields, list) or not set(fields) <= _FIELDS:
            raise ConfigError(
                f"{where}: upstream.{data_class}.{verdict} must list fields from {sorted(_FIELDS)}"
            )
        out[verdict] = tuple(fields)
    if data_class == "personal" and "sha256" in sum(out.values(), ()):
        raise ConfigError(f"{where}: upstream.personal must never include sha256")
    return out


def decide(result: ScanResult | None, policy: Policy, error: str = "") -> Verdict:
    """Turn the engine's detections into a verdict. Limits and errors are never ``clean``."""
    if result is None:
        return Verdict(VerdictKind.ERROR, reason=error or "not scanned")
    found = result.detections
    threats = [d for d in found if d.source != "limit"]
    if threats:
        worst = VerdictKind.SUSPICIOUS
        if any(policy.severity.get(d.severity, "malicious") == "malicious" for d in threats):
            worst = VerdictKind.MALICIOUS
        return Verdict(worst, found)
    if found:
        return Verdict(VerdictKind.UNSCANNED, found, reason=found[0].name)
    if result.errors:
        return Verdict(VerdictKind.ERROR, reason=result.errors[0])
    return Verdict(VerdictKind.CLEAN)


def minimize(
    verdict: Verdict,
    classification: Classification | None,
    result: ScanResult | None,
    *,
    policy: Policy,
    identity: Identity,
    now: dt.datetime | None = None,
) -> Record | None:
    """Build the record that may leave the device for this verdict, or None when nothing may."""
    data_class = classification.data_class if classification else DataClass.PERSONAL
    allowed = policy.fields(data_class, verdict.kind)
    if not allowed:
        return None
    detections = _wire_detections(verdict.detections, reason_only="detections" not in allowed)
    return Record(
        schema=SCHEMA_VERSION,
        record_id=secrets.token_hex(16),
        purpose="protection",
        pseudonym=identity.pseudonym,
        time_bucket=time_bucket(now or dt.datetime.now(dt.UTC)),
        verdict=verdict.kind.value,  # type: ignore[arg-type]  # policy only allows non-clean verdicts
        detections=detections,
        kind=classification.kind if classification and "kind" in allowed else None,  # type: ignore[arg-type]
        size_bucket=size_bucket(result.size) if result and "size_bucket" in allowed else None,
        sha256=result.sha256 if result and "sha256" in allowed else None,
        engine_version=identity.engine_version,
        rules_version=identity.rules_version,
    )


def _wire_detections(found: tuple[Detection, ...], *, reason_only: bool) -> list[WireDetection]:
    seen: dict[tuple[str, str], WireDetection] = {}
    for d in found:
        if reason_only and d.source != "limit":
            continue
        seen.setdefault((d.name, d.source), WireDetection(name=d.name, source=d.source))  # type: ignore[arg-type]
    return list(seen.values())[:64]


def size_bucket(size: int) -> int:
    """Round a size up to a power of two (1 for empty objects)."""
    return 1 << max(0, (size - 1).bit_length())


def time_bucket(now: dt.datetime) -> str:
    """Return the UTC hour of ``now``, e.g. ``2026-11-29T15:00Z``."""
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:00Z")
