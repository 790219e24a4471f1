"""Loading rules/purposes.toml: strict keys, legal bases, transfers outside the EU/EEA, notices, digests."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from governance_helpers import doc, purposes  # type: ignore[import-not-found, unused-ignore]
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import bundled_rules_dir
from agent.errors import ConfigError
from agent.governance import Purposes, render_notice


def test_bundled_file_declares_the_three_purposes():
    """The shipped file has protection (contract), threat_research (LI) and product_analytics (consent)."""
    loaded = Purposes.load(bundled_rules_dir() / "purposes.toml")
    bases = {name: p.basis for name, p in loaded.purposes.items()}
    assert bases == {
        "protection": "contract",
        "threat_research": "legitimate_interest",
        "product_analytics": "consent",
    }
    analytics = loaded.get("product_analytics")
    assert analytics.max_consent_age_days and analytics.notice.strip()
    assert loaded.get("protection").article == "GDPR Art. 6(1)(b)"
    assert all(p.recipients for p in loaded.purposes.values())


def _walk(raw, dotted):
    *path, last = [int(p) if p.isdigit() else p for p in dotted.split(".")]
    table = raw
    for part in path:
        table = table[part]
    return table, last


def _set(raw, dotted, value):
    table, last = _walk(raw, dotted)
    table[last] = value
    return raw


def _drop(raw, dotted):
    table, last = _walk(raw, dotted)
    del table[last]
    return raw


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: _set(r, "colour", 1), "unknown key colour"),
        (lambda r: _set(r, "controller.phone", "x"), "unknown key controller.phone"),
        (lambda r: _set(r, "purposes.protection.colour", 1), "unknown key purposes.protection.colour"),
        (
            lambda r: _set(r, "purposes.protection.recipients.0.url", "x"),
            "unknown key purposes.protection.recipients[0].url",
        ),
        (
            lambda r: _set(r, "purposes.protection.payloads.telemetry", ["a"]),
            "purposes.protection.payloads.telemetry",
        ),
        (lambda r: _set(r, "purposes.protection.payloads.verdicts", ["path"]), "schema lacks: ['path']"),
        (lambda r: _set(r, "purposes.protection.payloads.verdicts", ["kind", "kind"]), "a field twice"),
        (lambda r: _set(r, "policy_version", 0), "policy_version"),
        (lambda r: _set(r, "policy_version", True), "policy_version"),
        (lambda r: _drop(r, "controller"), "controller must be a table"),
        (lambda r: _set(r, "controller.name", ""), "controller.name"),
        (lambda r: _set(r, "purposes", {}), "at least one purpose"),
        (lambda r: _set(r, "purposes.protection.basis", "vibes"), "purposes.protection.basis"),
        (lambda r: _set(r, "purposes.protection.retention_days", 0), "purposes.protection.retention_days"),
        (lambda r: _set(r, "purposes.protection.retention_days", "90"), "purposes.protection.retention_days"),
        (lambda r: _drop(r, "purposes.protection.description"), "purposes.protection.description"),
        (
            lambda r: _set(r, "purposes.protection.recipients", {"name": "x"}),
            "purposes.protection.recipients",
        ),
        (
            lambda r: _set(r, "purposes.protection.recipients.0.country", "Germany"),
            "purposes.protection.recipients[0].country",
        ),
        (
            lambda r: _set(r, "purposes.protection.recipients.0.transfer", "scc"),
            "purposes.protection.recipients[0].transfer must be left out",
        ),
        (
            lambda r: _set(r, "purposes.protection.recipients.0.country", "US"),
            "purposes.protection.recipients[0].transfer is required outside the EU/EEA (US)",
        ),
        (
            lambda r: _set(
                r,
                "purposes.protection.recipients.0",
                {"name": "a", "category": "b", "country": "IN", "transfer": "adequacy"},
            ),
            "IN has no EU adequacy decision",
        ),
        (
            lambda r: _drop(r, "purposes.product_analytics.max_consent_age_days"),
            "max_consent_age_days is required",
        ),
        (
            lambda r: _set(r, "purposes.protection.max_consent_age_days", 30),
            "max_consent_age_days is only for",
        ),
        (lambda r: _drop(r, "purposes.product_analytics.notice"), "purposes.product_analytics.notice"),
        (lambda r: _set(r, "purposes.product_analytics.notice_file", "x.txt"), "exclude each other"),
        (lambda r: _set(r, "purposes", {"Bad-Name": {}}), "purposes.Bad-Name is not a valid purpose name"),
        (lambda r: _set(r, "purposes.install", {}), "purposes.install is not a valid purpose name"),
    ],
)
def test_loader_errors_name_the_key(edit, message):
    """Each malformed purposes document is refused with a message naming the offending key."""
    with pytest.raises(ConfigError) as info:
        purposes(edit(doc()))
    assert message in str(info.value)
    assert str(info.value).startswith("purposes.toml: ")


def test_recipient_outside_the_eea_with_a_mechanism_loads():
    """A recipient in a third country loads when it names SCCs, or adequacy where one exists."""
    raw = doc()
    raw["purposes"]["protection"]["recipients"] = [
        {"name": "mirror", "category": "processor", "country": "US", "transfer": "scc"},
        {"name": "backup", "category": "processor", "country": "CH", "transfer": "adequacy"},
    ]
    loaded = purposes(raw).get("protection")
    assert [(r.country, r.transfer) for r in loaded.recipients] == [("US", "scc"), ("CH", "adequacy")]


def test_notice_file_is_read_relative_to_the_purposes_file(tmp_path):
    """A consent notice may live in its own file next to purposes.toml; its text is what is shown."""
    (tmp_path / "analytics.txt").write_text("Counters, randomized on the device.\n", encoding="utf-8")
    text = (bundled_rules_dir() / "purposes.toml").read_text(encoding="utf-8")
    start = text.index('notice = """\nWith your consent')
    end = text.index('"""', start + 12) + 3
    (tmp_path / "purposes.toml").write_text(text[:start] + 'notice_file = "analytics.txt"' + text[end:])
    loaded = Purposes.load(tmp_path / "purposes.toml").get("product_analytics")
    assert loaded.notice == "Counters, randomized on the device.\n"


def test_missing_notice_file_is_an_error_naming_the_key(tmp_path):
    """A notice_file that cannot be read names the key."""
    raw = doc()
    del raw["purposes"]["product_analytics"]["notice"]
    raw["purposes"]["product_analytics"]["notice_file"] = "absent.txt"
    with pytest.raises(ConfigError, match=r"purposes\.product_analytics\.notice_file cannot be read"):
        Purposes.from_dict(raw, "purposes.toml", tmp_path)


def test_unreadable_toml_is_a_config_error(tmp_path):
    """A file that is not TOML is a ConfigError naming the file."""
    bad = tmp_path / "purposes.toml"
    bad.write_text("policy_version = [", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"purposes .*purposes\.toml"):
        Purposes.load(bad)


def test_loaded_purposes_are_frozen():
    """Purposes, their recipients and the controller cannot be changed after loading."""
    loaded = purposes()
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.get("protection").basis = "consent"
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.controller.name = "x"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("purposes.product_analytics.notice", "Different words.\n"),
        ("purposes.product_analytics.retention_days", 10),
        ("purposes.product_analytics.max_consent_age_days", 30),
        ("purposes.product_analytics.recipients.0.name", "someone else"),
        ("controller.contact", "dpo@elsewhere.invalid"),
    ],
)
def test_digest_changes_with_anything_the_user_was_told(path, value):
    """Changing the notice, retention, consent age, a recipient or the controller changes the digest."""
    before = purposes().get("product_analytics").digest
    assert purposes(_set(doc(), path, value)).get("product_analytics").digest != before


def test_digest_ignores_the_policy_version_and_other_purposes():
    """A version bump, or a change to another purpose, leaves a purpose's digest as it was."""
    before = purposes().get("product_analytics").digest
    raw = _set(doc(), "policy_version", 7)
    _set(raw, "purposes.protection.retention_days", 5)
    assert purposes(raw).get("product_analytics").digest == before


def test_notice_names_controller_recipients_countries_and_how_to_withdraw():
    """The rendered notice holds the controller, the purpose, recipients and country, and the withdraw command."""
    loaded = purposes()
    text = render_notice(loaded, loaded.get("product_analytics"))
    for needle in (
        loaded.controller.name,
        loaded.controller.contact,
        "product_analytics",
        "GDPR Art. 6(1)(a)",
        "analytics (",
        "; DE)",
        "endpoint-agent consent withdraw product_analytics",
        "Policy version: 1",
    ):
        assert needle in text
    assert hashlib.sha256(text.encode()).hexdigest() != hashlib.sha256(b"").hexdigest()


def test_undeclared_purpose_lookup_is_a_config_error():
    """Asking for a purpose the file does not declare names it."""
    with pytest.raises(ConfigError, match="undeclared purpose 'marketing'"):
        purposes().get("marketing")


_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 400), st.text(max_size=12))
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["name", "basis", "x", "country"]), inner, max_size=3),
    ),
    max_leaves=8,
)
_KEYS = [
    "policy_version",
    "controller",
    "purposes.protection",
    "purposes.protection.basis",
    "purposes.protection.payloads",
    "purposes.protection.payloads.verdicts",
    "purposes.protection.recipients",
    "purposes.protection.recipients.0",
    "purposes.protection.recipients.0.country",
    "purposes.protection.recipients.0.transfer",
    "purposes.product_analytics.notice",
    "purposes.product_analytics.max_consent_age_days",
    "purposes.threat_research",
    "purposes.new_one",
]


@settings(max_examples=300, deadline=None)
@given(edits=st.lists(st.tuples(st.sampled_from(_KEYS), _VALUES), min_size=1, max_size=4))
def test_loader_raises_only_config_error(edits):
    """Any mangled purposes document either loads or raises ConfigError, never anything else."""
    raw = doc()
    for key, value in edits:
        try:
            _set(raw, key, value)
        except (KeyError, IndexError, TypeError):
            continue
    try:
        loaded = purposes(raw)
    except ConfigError:
        return
    assert loaded.purposes
