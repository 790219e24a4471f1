"""The unattended answers file: a good one installs; a bad one is an error naming the key."""

from __future__ import annotations

import json
import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from setup_support import EXAMPLE_ANSWERS

from agent.config import bundled_rules_dir
from agent.errors import ConfigError
from agent.governance import ConsentLedger, Purposes
from installer.answers import load_answers, parse_answers

pytest_plugins = ["setup_fixtures"]

PURPOSES = Purposes.load(bundled_rules_dir() / "purposes.toml")
GOOD = {
    "country": "DE",
    "age_attested_by": "organisation",
    "attestation": "Every user of this managed device is an adult employee.",
    "purposes": {"threat_research": True, "product_analytics": False},
}


def _with(**changes):
    doc = json.loads(json.dumps(GOOD))
    for key, value in changes.items():
        if "__" in key:
            table, sub = key.split("__")
            if value is None:
                del doc[table][sub]
            else:
                doc[table][sub] = value
        elif value is None:
            del doc[key]
        else:
            doc[key] = value
    return doc


def test_the_shipped_example_is_valid_and_sets_every_purpose():
    """installer/answers.example.toml parses, and answers every optional purpose explicitly."""
    answers = load_answers(EXAMPLE_ANSWERS, PURPOSES)
    assert set(answers.choices) == {"threat_research", "product_analytics"}
    raw = tomllib.loads(EXAMPLE_ANSWERS.read_text())
    assert set(raw["purposes"]) == set(answers.choices)


@pytest.mark.parametrize(
    ("doc", "named"),
    [
        (_with(colour="blue"), "'colour'"),
        (_with(purposes__product_analytics=None), "purposes.product_analytics is missing"),
        (_with(purposes__threat_research=None), "purposes.threat_research is missing"),
        (_with(purposes=None), "purposes is missing"),
        (_with(purposes__product_analytics="yes"), "purposes.product_analytics must be true or false"),
        (_with(purposes__product_analytics=1), "purposes.product_analytics must be true or false"),
        (_with(purposes__protection=True), "purposes.protection rests on the contract"),
        (_with(purposes__telemetry=True), "purposes.telemetry"),
        (_with(purposes=["threat_research"]), "purposes must be a table"),
        (_with(country=None), "country is missing"),
        (_with(country=49), "country must be a string"),
        (_with(country="Germany"), "country must be a two-letter"),
        (_with(age_attested_by=None), "age_attested_by is missing"),
        (_with(age_attested_by="user"), "age_attested_by must be"),
        (_with(age_attested_by=True), "age_attested_by must be a string"),
        (_with(attestation=None), "attestation is missing"),
        (_with(attestation="  "), "attestation must be"),
    ],
)
def test_a_bad_answer_is_an_error_naming_the_key(doc, named):
    """Unknown keys, missing consent answers and wrong types are errors that name the key."""
    with pytest.raises(ConfigError) as info:
        parse_answers(doc, PURPOSES, "answers.toml")
    assert named in str(info.value)
    assert str(info.value).startswith("answers.toml: ")


_TOML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)


@given(
    st.dictionaries(
        st.sampled_from(["country", "age_attested_by", "attestation", "purposes", "x"]), _TOML_VALUES
    )
)
def test_the_parser_raises_only_config_errors(doc):
    """Any document either parses or raises ConfigError (never another exception)."""
    try:
        answers = parse_answers(doc, PURPOSES, "answers.toml")
    except ConfigError:
        return
    assert set(answers.choices) == {"threat_research", "product_analytics"}


def test_a_bad_answers_file_stops_the_command_with_exit_2(setup_env, tmp_path):
    """Through the command line: exit 2, the key named, nothing written."""
    answers = tmp_path / "answers.toml"
    answers.write_text(
        'country = "DE"\nage_attested_by = "organisation"\nattestation = "adults"\n[purposes]\nthreat_research = false\n'
    )
    out = setup_env.run(*setup_env.install_args("--unattended", str(answers)))
    assert out.returncode == 2, out
    assert "purposes.product_analytics is missing" in out.stdout
    assert not setup_env.prefix.exists()


def test_an_unreadable_answers_file_is_a_clear_error(setup_env, tmp_path):
    """A file that is not TOML, or not there, is exit 2 with the file named."""
    broken = tmp_path / "answers.toml"
    broken.write_text("country = \n")
    for path in (broken, tmp_path / "missing.toml"):
        out = setup_env.run(*setup_env.install_args("--unattended", str(path)))
        assert out.returncode == 2 and str(path) in out.stdout, out


def test_an_unattended_install_records_the_attestation_and_each_answer(setup_env, tmp_path):
    """A good answers file installs: the organisation's attestation and both answers are in the ledger."""
    answers = tmp_path / "answers.toml"
    answers.write_text(
        'country = "KR"\nage_attested_by = "organisation"\nattestation = "Adults only, by contract."\n'
        "[purposes]\nthreat_research = true\nproduct_analytics = false\n"
    )
    out = setup_env.run(*setup_env.install_args("--unattended", str(answers)))
    assert out.returncode == 0, out.stdout + out.stderr
    state = setup_env.prefix / "state"
    receipt = json.loads((state / "install.json").read_text())
    assert receipt["age_check"]["by"] == "organisation"
    with ConsentLedger.open(state, PURPOSES) as ledger:
        actions = [(e.purpose, e.action) for e in ledger.entries()]
        assert ledger.state("threat_research").allowed
        assert not ledger.state("product_analytics").allowed
    assert actions == [("install", "age_check_passed"), ("threat_research", "grant")]
    assert "(answer from the answers file: on)" in out.stdout
    assert "(answer from the answers file: off)" in out.stdout
