"""Anonymized product analytics: the report schema and its on-device perturbation (local DP).

**What is counted** (per UTC day, on the device): ``scans_run``; objects scanned per kind
(``objects.<kind>``, :data:`KINDS`); detections per rule family (``detections.<family>``: the rule
name up to its first ``_``, ``.`` or ``-``, matched case-insensitively against the closed list
:data:`FAMILIES`, anything else is ``other``; a closed list means a rare custom rule name cannot
single out an install); errors per kind (``errors.<kind>``, :data:`ERROR_KINDS`). Each counter has
a cap ``C`` (:data:`COUNTERS`); larger values count as ``C``.

**Mechanism, version 1** (the 1-bit mean protocol of Ding, Kulkarni and Yekhanin, "Collecting
Telemetry Data Privately", NeurIPS 2017, with one sampled dimension per report as in Nguyen et al.,
"Harmony", 2016). For one day's counters ``x``:

1. pick one counter ``j`` uniformly at random among the ``d`` counters (independently of ``x``);
2. clamp ``v = min(max(x_j, 0), C_j)``;
3. report the bit ``b = 1`` with probability ``P1(v) = (1 + (v / C_j) * (e^ε - 1)) / (e^ε + 1)``.

The report is ``(day, j, b)`` and a fresh random ``report_id``. With ``ε = 1`` (:data:`EPSILON`),
``P1`` lies in ``[1 / (e + 1), e / (e + 1)] = [0.269, 0.731]`` for every input, so for **any** two
inputs ``x, x'`` (not only neighbouring ones) and any output ``o``:
``P(o | x) / P(o | x') <= e^ε``. That is ε-local differential privacy for the whole day's counters
in one report; the bound is tight (``v = 0`` against ``v = C``). Sampling one counter with the full
ε beats splitting ε over all ``d`` counters: for ``ε = 1`` and ``d = 38`` the error of an estimated
total is about five times smaller. The random choices come from the operating system's CSPRNG
(:class:`secrets.SystemRandom`), so reports cannot be used to predict each other.

**Estimation** (the cloud): ``v̂ = C_j * (b * (e^ε + 1) - 1) / (e^ε - 1)`` is unbiased for the
clamped ``v`` (:func:`unbiased`). With ``N`` reports for a day of which ``N_j`` picked ``j``, the
total ``N / N_j * Σ v̂`` is unbiased for the sum over the reporting installs of their clamped
``x_j``; its variance given ``N_j = n`` is ``N² (1 - n/N) S² / n + (N / n) Σ_i Var(v̂ | v_i)`` with
``S²`` the population variance of the clamped values and ``Var(v̂ | v) = C² ((e^ε + 1) / (e^ε - 1))²
P1(v) (1 - P1(v))`` (:func:`noise_variance`).

**Budget and composition**: the device keeps a persisted ε budget per day of data
(``agent.governance.analytics``; by default ε, i.e. one report per day). A report is perturbed
once, stored, and resent unchanged until delivered, so a retry never spends ε again. Over ``T`` days
an install's privacy loss adds up to at most ``T * ε`` (basic composition).
"""

from __future__ import annotations

import datetime as dt
import math
import random
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec

if TYPE_CHECKING:
    from agent.model import Outcome

__all__ = [
    "ANALYTICS_FIELDS",
    "ANALYTICS_SCHEMA",
    "CAPS",
    "COUNTERS",
    "EPSILON",
    "ERROR_KINDS",
    "FAMILIES",
    "KINDS",
    "MAX_REPORTS",
    "AnalyticsReport",
    "CounterSpec",
    "decode_reports",
    "encode_reports",
    "family",
    "noise_variance",
    "outcome_counters",
    "perturb",
    "prob_one",
    "probability",
    "unbiased",
]

ANALYTICS_SCHEMA: Literal[1] = 1
EPSILON = 1.0
MAX_REPORTS = 31  # reports per request: a month of backlog at most
KINDS = ("executable", "script", "document", "archive", "image", "text", "other", "unknown")
ERROR_KINDS = ("permission", "missing", "not_regular", "worker", "limit", "aborted", "other")
# The bundled rules' families, then ClamAV's platform prefixes (Win.Trojan.X-1 -> Win), then other.
FAMILIES = (
    "EICAR", "Limits", "Office", "Packer", "PowerShell", "Script",
    "Andr", "Doc", "Email", "Heuristics", "Html", "Java", "Js", "Multios", "Osx", "Pdf", "PUA", "Txt",
    "Unix", "Win", "Xls", "other",
)  # fmt: skip
_FAMILY_BY_FOLDED = {f.casefold(): f for f in FAMILIES if f != "other"}
_ERROR_REASONS = (  # a scan error's reason -> its kind; the reason itself never leaves
    ("permission", "permission"),
    ("not permitted", "permission"),
    ("no such file", "missing"),
    ("not a regular file", "not_regular"),
    ("worker", "worker"),
    ("crash", "worker"),
)


@dataclass(frozen=True, slots=True)
class CounterSpec:
    """One daily counter: its wire name and its cap (values above it count as the cap)."""

    name: str
    cap: int


COUNTERS: tuple[CounterSpec, ...] = (
    CounterSpec("scans_run", 16),
    *(CounterSpec(f"objects.{kind}", 10_000) for kind in KINDS),
    *(CounterSpec(f"detections.{name}", 16) for name in FAMILIES),
    *(CounterSpec(f"errors.{kind}", 1_000) for kind in ERROR_KINDS),
)
CAPS: Mapping[str, int] = {c.name: c.cap for c in COUNTERS}
_NAMES = tuple(CAPS)
_E = math.exp(EPSILON)


class AnalyticsReport(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One perturbed report: a day, one sampled counter and one randomized bit; nothing else."""

    schema: Literal[1]
    report_id: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{32}$")]
    day: Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}$")]
    counter: Annotated[str, msgspec.Meta(pattern=r"^[a-z_]+(?:\.[A-Za-z_]+)?$", max_length=64)]
    bit: Literal[0, 1]

    def __post_init__(self) -> None:
        if self.counter not in CAPS:
            raise ValueError("unknown counter")
        dt.date.fromisoformat(self.day)  # a ValueError for a day that does not exist


ANALYTICS_FIELDS: tuple[str, ...] = AnalyticsReport.__struct_fields__

_ENCODER = msgspec.json.Encoder()
_BATCH = msgspec.json.Decoder(
    Annotated[list[AnalyticsReport], msgspec.Meta(min_length=1, max_length=MAX_REPORTS)]
)


def encode_reports(reports: Sequence[AnalyticsReport]) -> bytes:
    """A JSON list of reports, as sent."""
    return _ENCODER.encode(list(reports))


def decode_reports(data: bytes) -> list[AnalyticsReport]:
    """Decode and validate 1 to :data:`MAX_REPORTS` reports; raises ``msgspec`` errors only."""
    return _BATCH.decode(data)


def family(rule_name: str) -> str:
    """The rule family: the name up to its first ``_``, ``.`` or ``-``, if listed; else ``other``."""
    head = rule_name
    for sep in "_.-":
        head = head.split(sep, 1)[0]
    return _FAMILY_BY_FOLDED.get(head.casefold(), "other")


def outcome_counters(outcome: Outcome) -> list[str]:
    """The counters one scan outcome adds 1 to; none for an answer from the verdict cache."""
    if outcome.cached:
        return []
    kind = outcome.classification.kind if outcome.classification is not None else "unknown"
    names = [f"objects.{kind if kind in KINDS else 'other'}"]
    names.extend(f"detections.{family(d.name)}" for d in outcome.verdict.detections)
    error = _error_kind(outcome)
    if error is not None:
        names.append(f"errors.{error}")
    return names


def _error_kind(outcome: Outcome) -> str | None:
    verdict = outcome.verdict
    if verdict.kind == "unscanned":
        return "limit" if any(d.source == "limit" for d in verdict.detections) else "aborted"
    if verdict.kind != "error":
        return None
    reason = verdict.reason.lower()
    return next((kind for needle, kind in _ERROR_REASONS if needle in reason), "other")


def prob_one(counter: str, value: int) -> float:
    """``P1(v)``: the probability that the report's bit is 1 when ``counter`` holds ``value``."""
    cap = CAPS[counter]
    clamped = min(max(value, 0), cap)
    return (1.0 + clamped / cap * (_E - 1.0)) / (_E + 1.0)


def probability(report_counter: str, bit: int, counts: Mapping[str, int]) -> float:
    """The exact probability that :func:`perturb` of ``counts`` reports ``(report_counter, bit)``."""
    one = prob_one(report_counter, counts.get(report_counter, 0))
    return (one if bit else 1.0 - one) / len(_NAMES)


def perturb(counts: Mapping[str, int], day: str, rng: random.Random | None = None) -> AnalyticsReport:
    """The report for one day's ``counts``: one sampled counter, one randomized bit (ε = EPSILON)."""
    draw = rng or secrets.SystemRandom()
    counter = _NAMES[draw.randrange(len(_NAMES))]
    bit: Literal[0, 1] = 1 if draw.random() < prob_one(counter, counts.get(counter, 0)) else 0
    return AnalyticsReport(
        schema=ANALYTICS_SCHEMA, report_id=secrets.token_hex(16), day=day, counter=counter, bit=bit
    )


def unbiased(counter: str, bit: int) -> float:
    """``v̂``: the unbiased estimate of one install's clamped counter from one report's bit."""
    return CAPS[counter] * (bit * (_E + 1.0) - 1.0) / (_E - 1.0)


def noise_variance(counter: str, value: int) -> float:
    """``Var(v̂ | v)``: the variance of :func:`unbiased` for an install holding ``value``."""
    one = prob_one(counter, value)
    scale = CAPS[counter] * (_E + 1.0) / (_E - 1.0)
    return scale * scale * one * (1.0 - one)
