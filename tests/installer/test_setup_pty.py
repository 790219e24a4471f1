"""The interactive setup on a real pseudo terminal: age screen, notices, one switch per purpose, install."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re

from agent.config import bundled_rules_dir
from agent.governance import ConsentLedger, Purposes

pytest_plugins = ["setup_fixtures"]

DOB_PROMPT = r"Date of birth \(YYYY-MM-DD\): "
COUNTRY_PROMPT = r"Country or region \(two-letter code, for example DE\): "
MALFORMED = "That entry could not be read as a date. Please enter it as YYYY-MM-DD."
ADULT_DOB = "1971-03-14"


def _adult_dob_forms() -> list[str]:
    return ["1971-03-14", "14.03.1971", "19710314", "1971-3-14", "14/03/1971"]


def _answer_age(session, country: str, dob: str) -> None:
    session.expect(COUNTRY_PROMPT)
    session.send(country)
    session.expect(DOB_PROMPT)
    session.send(dob)


def _screen(text: str, number: int) -> str:
    """The exact text of optional screen ``number`` as the terminal showed it (prompt included)."""
    start = text.index(f"\n---- Optional {number} of ")
    end = text.index("press Enter to leave it off: ", start) + len("press Enter to leave it off: ")
    return text[start:end]


def test_interactive_install_records_each_choice_with_the_hash_of_its_screen(setup_env, pty_setup):
    """Age, notice, two switches (one on, one left off) on a pty: the ledger and receipt hash each screen."""
    session = pty_setup(*setup_env.install_args())
    _answer_age(session, "de", ADULT_DOB)
    session.expect(r"---- Necessary processing: protection ----")
    notice = session.expect(r"(?s)(.*?)Press Enter to continue. ").group(1)
    assert "Recipients: security cloud" in notice and "Wire fields:" in notice
    assert "it ends when you uninstall the agent" in notice.replace("\r\n", "\n")
    assert "consent object protection" not in notice  # a contract purpose is not objected to
    session.send("")
    session.expect(r"\[ \] threat_research: type y to turn it on, or press Enter to leave it off: ")
    session.send("")
    session.expect(r"\[ \] product_analytics: type y to turn it on, or press Enter to leave it off: ")
    session.send("y")
    assert session.wait() == 0, session.text
    text = session.text
    assert "endpoint-agent is installed." in text
    assert "PING on" in text and "answered PONG" in text

    state = setup_env.prefix / "state"
    receipt = json.loads((state / "install.json").read_text())
    screens = {c["purpose"]: c for c in receipt["choices"]}
    assert screens["threat_research"]["on"] is False
    assert screens["product_analytics"]["on"] is True
    for number, name in ((1, "threat_research"), (2, "product_analytics")):
        assert screens[name]["text_sha256"] == hashlib.sha256(_screen(text, number).encode()).hexdigest()

    purposes = Purposes.load(bundled_rules_dir() / "purposes.toml")
    with ConsentLedger.open(state, purposes) as ledger:
        entries = ledger.entries()
        assert ledger.verify().ok
        assert ledger.state("product_analytics").allowed
        assert not ledger.state("threat_research").allowed
    actions = [(e.purpose, e.action, e.channel) for e in entries]
    assert actions == [
        ("install", "age_check_passed", "installer"),
        ("threat_research", "object", "installer"),
        ("product_analytics", "grant", "installer"),
    ]
    grant = entries[2]
    assert grant.notice_sha256 == hashlib.sha256(_screen(text, 2).encode()).hexdigest()
    assert receipt["age_check"]["by"] == "user"


def test_the_date_of_birth_is_stored_nowhere(setup_env, pty_setup):
    """After an interactive install, no file anywhere in the test's tree holds the date of birth in any form."""
    session = pty_setup(*setup_env.install_args())
    _answer_age(session, "FR", ADULT_DOB)
    session.expect(r"Press Enter to continue. ")
    session.send("")
    for _ in range(2):
        session.expect(r"press Enter to leave it off: ")
        session.send("")
    assert session.wait() == 0, session.text
    blobs = [p.read_bytes() for p in setup_env.root.rglob("*") if p.is_file() and p != setup_env.agent]
    assert len(blobs) > 5
    for form in _adult_dob_forms():
        for needle in (form.encode(), form.encode().hex().encode(), form.encode("utf-16-le")):
            assert not any(needle in blob for blob in blobs), form


def test_the_age_screen_shows_no_cutoff_and_prefills_nothing(setup_env, pty_setup):
    """The age screen asks country and date freely: no age, no cutoff, no "over 18" box, no default."""
    session = pty_setup(*setup_env.install_args())
    session.expect(COUNTRY_PROMPT)
    session.send("DE")
    session.expect(DOB_PROMPT)
    screen = session.text
    assert not re.search(r"\b(1[3-9]|2[01])\b", screen), screen
    assert not re.search(r"over|older|adult|minor|\[[ x]\]", screen, re.IGNORECASE), screen
    assert screen.rstrip().endswith("Date of birth (YYYY-MM-DD):")
    session.send("")  # the prompt waits for the user's own entry; nothing is assumed
    session.expect(re.escape(MALFORMED))


def test_every_malformed_date_gets_the_same_neutral_reprompt(setup_env, pty_setup):
    """Empty, text, 31 February, a future date, year 0001 and 200 characters: the same re-prompt each."""
    future = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=400)).isoformat()
    bad = [
        "",
        "yesterday",
        "2001-02-31",
        future,
        "0001-01-01",
        "7" * 200,
        "1990-13-01",
        "\u0661\u0669\u0669\u0660-01-01",
    ]
    session = pty_setup(*setup_env.install_args())
    session.expect(COUNTRY_PROMPT)
    session.send("DE")
    session.expect(DOB_PROMPT)
    for entry in bad:
        session.send(entry)
        between = session.expect(r"(?s)(.*?)" + DOB_PROMPT).group(1).replace("\r\n", "\n")
        assert between == f"{entry}\n{MALFORMED}\n", entry
    assert not setup_env.prefix.exists() and not setup_env.outside_marker.exists()


def test_a_failed_check_is_refused_neutrally_marked_twice_and_blocks_a_retry(setup_env, pty_setup):
    """A valid date under the minimum age: neutral refusal, two markers, and the next run asks nothing."""
    young = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=365 * 10)).isoformat()
    session = pty_setup(*setup_env.install_args())
    _answer_age(session, "DE", young)
    assert session.wait() == 3
    assert session.text.split(young)[-1].strip() == "Thank you. Setup cannot continue on this device."
    for marker in (setup_env.state_marker, setup_env.outside_marker):
        doc = json.loads(marker.read_text())
        assert set(doc) == {"blocked_until", "policy_version"}
        assert marker.stat().st_mode & 0o777 == 0o600
        assert young.encode() not in marker.read_bytes()
    assert sorted(p.name for p in setup_env.prefix.rglob("*")) == ["age-retry-block", "state"]

    setup_env.state_marker.unlink()  # deleting the one in the install dir is not the way round it
    retry = pty_setup(*setup_env.install_args())
    assert retry.wait() == 3
    assert "Setup cannot continue on this device at the moment." in retry.text
    assert "Date of birth" not in retry.text and "Country" not in retry.text
    assert setup_env.state_marker.exists(), "the missing copy is written back"


def test_input_that_ends_stops_setup_without_writing(setup_env, pty_setup):
    """Ctrl-D at the date prompt stops setup: exit 1, nothing written, no marker."""
    session = pty_setup(*setup_env.install_args())
    session.expect(COUNTRY_PROMPT)
    session.send("DE")
    session.expect(DOB_PROMPT)
    os.write(session._master, b"\x04")
    assert session.wait() == 1
    assert "Nothing was written." in session.text
    assert not setup_env.prefix.exists() and not setup_env.outside_marker.exists()
