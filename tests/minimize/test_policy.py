"""The minimization policy: what may leave for each (data class, verdict)."""

from __future__ import annotations

import pytest

from agent.config import bundled_rules_dir
from agent.errors import ConfigError
from agent.minimize import Identity, Policy, decide, minimize
from agent.model import Classification, DataClass, Detection, ScanResult, VerdictKind

IDENTITY = Identity(
    pseudonym="c" * 32, engine_version="endpoint-agent-engine/1 yara-x/1", rules_version="0" * 16
)
SHA = "d" * 64


@pytest.fixture(scope="module")
def policy():
    return Policy.load(bundled_rules_dir() / "policy.toml")


def _result(*detections, size=1000):
    return ScanResult(size=size, sha256=SHA, detections=tuple(detections))


def _cls(data_class, kind="executable"):
    return Classification(kind=kind, fmt="elf", data_class=data_class)


YARA_HIGH = Detection("EICAR_Test_File", "yara", "high")
YARA_LOW = Detection("Packer_UPX_ELF", "yara", "low")
LIMIT = Detection("Limits.Exceeded.MaxRecursion", "limit", "limit", member="a/b/c.zip")


def test_non_personal_detection_carries_hash_and_size_bucket(policy):
    """non_personal + detection: full SHA-256, rule names, kind, size bucket."""
    result = _result(YARA_HIGH, size=1000)
    verdict = decide(result, policy)
    record = minimize(verdict, _cls(DataClass.NON_PERSONAL), result, policy=policy, identity=IDENTITY)
    assert verdict.kind is VerdictKind.MALICIOUS
    assert record is not None
    assert (record.sha256, record.size_bucket, record.kind) == (SHA, 1024, "executable")
    assert [d.name for d in record.detections] == ["EICAR_Test_File"]


def test_personal_detection_carries_no_hash(policy):
    """personal + detection: rule names and kind only, no hash of any kind, no size."""
    result = _result(YARA_LOW)
    record = minimize(
        decide(result, policy), _cls(DataClass.PERSONAL, "document"), result, policy=policy, identity=IDENTITY
    )
    assert record is not None
    assert record.verdict == "suspicious"
    assert record.sha256 is None and record.size_bucket is None
    assert record.kind == "document"


def test_clean_produces_no_record(policy):
    """A clean verdict sends nothing at all."""
    result = _result()
    assert (
        minimize(
            decide(result, policy), _cls(DataClass.NON_PERSONAL), result, policy=policy, identity=IDENTITY
        )
        is None
    )


def test_unscanned_carries_the_reason_only(policy):
    """unscanned: only the limit name, no kind, no hash, no member path."""
    result = _result(LIMIT)
    verdict = decide(result, policy)
    record = minimize(verdict, _cls(DataClass.NON_PERSONAL), result, policy=policy, identity=IDENTITY)
    assert verdict.kind is VerdictKind.UNSCANNED
    assert record is not None
    assert [(d.name, d.source) for d in record.detections] == [("Limits.Exceeded.MaxRecursion", "limit")]
    assert record.sha256 is None and record.kind is None and record.size_bucket is None


def test_detection_beats_limit(policy):
    """A real detection next to a limit is malicious, not unscanned."""
    assert decide(_result(YARA_HIGH, LIMIT), policy).kind is VerdictKind.MALICIOUS


def test_errors_are_never_clean(policy):
    """An engine error with no detection is an error verdict; no result at all is an error too."""
    assert (
        decide(ScanResult(size=1, sha256=SHA, errors=("corrupt zip archive",)), policy).kind
        is VerdictKind.ERROR
    )
    assert decide(None, policy, "permission denied").kind is VerdictKind.ERROR


def test_records_are_unique(policy):
    """Every record gets its own random record_id."""
    result = _result(YARA_HIGH)
    verdict = decide(result, policy)
    ids = {
        minimize(verdict, _cls(DataClass.NON_PERSONAL), result, policy=policy, identity=IDENTITY).record_id
        for _ in range(50)
    }
    assert len(ids) == 50


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"policy_version": 1, "colour": "red"}, "unknown key 'colour'"),
        ({"policy_version": 1, "upstream": {"personal": {"malicious": ["sha256"]}}}, "never include sha256"),
        ({"policy_version": 1, "upstream": {"personal": {"malicious": ["path"]}}}, "must list fields"),
        ({"policy_version": 1, "severity": {"high": "clean"}}, "must be 'malicious' or 'suspicious'"),
        ({"policy_version": 0}, "policy_version"),
        ({"policy_version": 1, "data_class": {"personal_kinds": ["spreadsheet"]}}, "unknown kinds"),
    ],
)
def test_bad_policies_are_refused(raw, message):
    """A policy that would leak or that has unknown keys is refused at load time, naming the key."""
    with pytest.raises(ConfigError, match=message):
        Policy.from_dict(raw, "policy.toml")
