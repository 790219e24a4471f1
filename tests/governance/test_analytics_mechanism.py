"""The analytics mechanism: its ε bound, unbiased inversion, the sampler, and the strict report schema."""

from __future__ import annotations

import json
import math
import random
import secrets

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import bundled_rules_dir
from agent.governance import WIRE_SCHEMAS, Purposes
from agent.minimize.analytics import (
    CAPS,
    COUNTERS,
    EPSILON,
    MAX_REPORTS,
    AnalyticsReport,
    decode_reports,
    encode_reports,
    family,
    noise_variance,
    outcome_counters,
    perturb,
    prob_one,
    probability,
    unbiased,
)
from agent.model import Classification, DataClass, Detection, Outcome, ScanRequest, Verdict, VerdictKind

E = math.exp(EPSILON)
DAY = "2026-03-14"
counts = st.dictionaries(st.sampled_from(sorted(CAPS)), st.integers(-10, 50_000), max_size=len(CAPS))


def _report(**overrides) -> dict:
    base = {"schema": 1, "report_id": secrets.token_hex(16), "day": DAY, "counter": "scans_run", "bit": 1}
    return {**base, **overrides}


@given(counts, counts)
def test_no_output_is_more_than_e_to_the_epsilon_likelier_under_one_day_than_another(x, y):
    """For any two days' counters (not only neighbours) and every output, P(o|x) <= e^ε P(o|y)."""
    for name in CAPS:
        for bit in (0, 1):
            assert probability(name, bit, x) <= E * probability(name, bit, y) * (1 + 1e-12)


@given(counts)
def test_the_output_probabilities_sum_to_one(x):
    """Over every (counter, bit) the analysed probabilities form a distribution."""
    assert math.isclose(sum(probability(n, b, x) for n in CAPS for b in (0, 1)), 1.0)


@pytest.mark.parametrize("spec", COUNTERS, ids=lambda c: c.name)
def test_the_bound_is_tight_between_zero_and_the_cap(spec):
    """The worst ratio, e^ε exactly, is between a counter at 0 and at its cap: ε is the real loss."""
    low, high = prob_one(spec.name, 0), prob_one(spec.name, spec.cap)
    assert math.isclose(high / low, E)
    assert math.isclose((1 - low) / (1 - high), E)
    assert prob_one(spec.name, spec.cap * 5) == high  # values past the cap count as the cap


@given(st.sampled_from(COUNTERS), st.integers(-10, 100_000))
def test_the_per_report_estimate_is_unbiased_for_the_capped_value(spec, value):
    """E[v̂] over the two possible bits equals min(max(v, 0), cap), and its variance is noise_variance."""
    one = prob_one(spec.name, value)
    mean = one * unbiased(spec.name, 1) + (1 - one) * unbiased(spec.name, 0)
    assert math.isclose(mean, min(max(value, 0), spec.cap), abs_tol=1e-9 * spec.cap)
    second = one * unbiased(spec.name, 1) ** 2 + (1 - one) * unbiased(spec.name, 0) ** 2
    assert math.isclose(second - mean * mean, noise_variance(spec.name, value), rel_tol=1e-9)


@pytest.mark.parametrize("fraction", [0.0, 0.5, 1.0])
def test_the_sampler_follows_the_analysed_probabilities(fraction):
    """perturb() picks counters uniformly and sets the bit with prob_one, within 4 sigma over 20,000 draws."""
    rng = random.Random(1000 + int(fraction * 10))
    day = {spec.name: int(fraction * spec.cap) for spec in COUNTERS}
    draws = 20_000
    reports = [perturb(day, DAY, rng) for _ in range(draws)]
    expected = prob_one("scans_run", day["scans_run"])  # the same for every counter at this fraction
    ones = sum(r.bit for r in reports)
    assert abs(ones - draws * expected) <= 4 * math.sqrt(draws * expected * (1 - expected))
    share = 1 / len(COUNTERS)
    picked = {spec.name: 0 for spec in COUNTERS}
    for report in reports:
        picked[report.counter] += 1
    for count in picked.values():
        assert abs(count - draws * share) <= 4 * math.sqrt(draws * share * (1 - share))


def test_the_same_counters_give_different_reports_with_fresh_ids():
    """One day's counters perturbed again and again: many counters, both bits, never a repeated id."""
    day = {"objects.document": 1234, "detections.EICAR": 3, "scans_run": 2}
    reports = [perturb(day, DAY) for _ in range(300)]
    assert {r.bit for r in reports} == {0, 1}
    assert len({r.counter for r in reports}) > 20
    assert len({r.report_id for r in reports}) == 300


def test_a_report_carries_five_fields_and_never_a_count():
    """The encoded report is exactly schema, report_id, day, counter and a 0/1 bit."""
    day = dict.fromkeys(CAPS, 4321)
    for _ in range(50):
        (doc,) = json.loads(encode_reports([perturb(day, DAY)]))
        assert set(doc) == {"schema", "report_id", "day", "counter", "bit"}
        assert doc["bit"] in (0, 1)
        assert "4321" not in json.dumps(
            {k: v for k, v in doc.items() if k != "report_id"}
        )  # ids are random hex


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("EICAR_Test_File", "EICAR"),
        ("Eicar-Test-Signature", "EICAR"),
        ("Limits.Exceeded.MaxRecursion", "Limits"),
        ("Win.Trojan.Agent-12345", "Win"),
        ("PowerShell_Encoded_Command", "PowerShell"),
        ("Script_Dropper_ADODB", "Script"),
        ("Packer_UPX_ELF", "Packer"),
        ("AcmeCorp_Internal_Project_Rule", "other"),
        ("", "other"),
    ],
)
def test_rule_names_map_to_a_closed_list_of_families(rule, expected):
    """The family is the name up to its first '_', '.' or '-', if listed; any other name is 'other'."""
    assert family(rule) == expected


def _outcome(verdict: Verdict, kind: str | None = "document", cached: bool = False) -> Outcome:
    classification = Classification(kind, "pdf", DataClass.NON_PERSONAL) if kind else None
    return Outcome(ScanRequest(path="x"), verdict, None, classification, None, 0.0, cached=cached)


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (_outcome(Verdict(VerdictKind.CLEAN)), ["objects.document"]),
        (
            _outcome(
                Verdict(
                    VerdictKind.MALICIOUS, (Detection("EICAR_Test_File", "yara"), Detection("Acme_X", "hash"))
                ),
                "executable",
            ),
            ["objects.executable", "detections.EICAR", "detections.other"],
        ),
        (
            _outcome(Verdict(VerdictKind.ERROR, reason="permission denied"), None),
            ["objects.unknown", "errors.permission"],
        ),
        (
            _outcome(Verdict(VerdictKind.ERROR, reason="no such file or directory"), None),
            ["objects.unknown", "errors.missing"],
        ),
        (
            _outcome(
                Verdict(VerdictKind.UNSCANNED, (Detection("Limits.Exceeded.MaxRecursion", "limit"),)),
                "archive",
            ),
            ["objects.archive", "detections.Limits", "errors.limit"],
        ),
        (
            _outcome(Verdict(VerdictKind.UNSCANNED, reason="the service stopped"), None),
            ["objects.unknown", "errors.aborted"],
        ),
        (
            _outcome(Verdict(VerdictKind.ERROR, reason="worker crashed (signal 9)"), None),
            ["objects.unknown", "errors.worker"],
        ),
        (
            _outcome(Verdict(VerdictKind.ERROR, reason="something odd"), "image"),
            ["objects.image", "errors.other"],
        ),
        (_outcome(Verdict(VerdictKind.MALICIOUS, (Detection("EICAR_Test_File", "yara"),)), cached=True), []),
    ],
)
def test_outcomes_map_to_counters(outcome, expected):
    """Kind, detection families and the error kind are counted; an answer from the cache is not."""
    assert outcome_counters(outcome) == expected
    assert all(name in CAPS for name in expected)


@pytest.mark.parametrize(
    "bad",
    [
        [_report(extra=1)],
        [_report(counter="objects.floppy")],
        [_report(counter="objects.document", pseudonym="0" * 32)],
        [_report(day="2026-02-30")],
        [_report(day="2026-3-14")],
        [_report(bit=2)],
        [_report(schema=2)],
        [_report(report_id="ABC")],
        [],
        [_report() for _ in range(MAX_REPORTS + 1)],
    ],
)
def test_the_report_schema_is_strict(bad):
    """Unknown fields, unknown counters, impossible days, other bits and bad batch sizes are refused."""
    with pytest.raises(msgspec.ValidationError):
        decode_reports(json.dumps(bad).encode())


def test_a_valid_batch_round_trips():
    """What the agent encodes, the cloud's decoder reads back unchanged."""
    reports = [perturb({"scans_run": 3}, DAY) for _ in range(MAX_REPORTS)]
    assert decode_reports(encode_reports(reports)) == reports
    assert isinstance(reports[0], AnalyticsReport)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode())))
def test_decoding_raises_only_msgspec_errors(data):
    """Arbitrary bytes or JSON either decode to valid reports or raise msgspec's DecodeError."""
    try:
        reports = decode_reports(data)
    except msgspec.DecodeError:
        return
    assert all(r.counter in CAPS for r in reports)


def test_product_analytics_declares_exactly_the_report_and_the_analytics_recipient():
    """The purposes file carries the report kind with all its fields, to the `analytics` recipient, by consent."""
    declared = Purposes.load(bundled_rules_dir() / "purposes.toml").get("product_analytics")
    assert declared.basis == "consent"
    assert WIRE_SCHEMAS["analytics_report"] == AnalyticsReport.__struct_fields__
    assert declared.payloads == {"analytics_report": AnalyticsReport.__struct_fields__}
    assert [r.name for r in declared.recipients] == ["analytics"]
