"""The age gate's parts: the date parser, the age arithmetic, the minimum-age table, the retry-block marker."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import ConfigError
from installer.agegate import MAX_AGE_YEARS, AgePolicy, RetryBlock, age_in_years, parse_birth_date

TODAY = dt.date(2026, 11, 29)
HOUR = 3600.0


@pytest.mark.parametrize(
    "entry",
    [
        "",
        "   ",
        "yesterday",
        "2001-02-31",
        "2001-02-29",
        "2027-01-01",
        "0001-01-01",
        "1890-05-05",
        "x" * 200,
        "1" * 200,
        "1990-13-01",
        "1990-00-10",
        "1990/01/01",
        "01/02/1990",
        "1990-01-01T00:00",
        "\u0661\u0669\u0669\u0660-01-01",
        "1990-01-01\x00",
        "+1990-01-01",
    ],
)
def test_malformed_entries_are_none(entry):
    """Every odd form of a date is malformed (None), so each gets the same re-prompt."""
    assert parse_birth_date(entry, TODAY) is None


@pytest.mark.parametrize(
    ("entry", "born"),
    [
        ("1990-01-31", dt.date(1990, 1, 31)),
        (" 1990-1-3 ", dt.date(1990, 1, 3)),
        ("31.01.1990", dt.date(1990, 1, 31)),
        ("2000-02-29", dt.date(2000, 2, 29)),
        ("2026-11-29", TODAY),
    ],
)
def test_valid_entries_parse(entry, born):
    """ISO dates and day.month.year dates parse to the date meant."""
    assert parse_birth_date(entry, TODAY) == born


@given(st.text(max_size=300))
def test_the_parser_never_raises_and_only_returns_plausible_dates(text):
    """Any text gives None or a date between MAX_AGE_YEARS ago and today."""
    born = parse_birth_date(text, TODAY)
    assert born is None or (TODAY.year - born.year <= MAX_AGE_YEARS and born <= TODAY)


@given(st.dates(min_value=dt.date(1900, 1, 1), max_value=TODAY))
def test_an_iso_date_round_trips(born):
    """Every real date written as YYYY-MM-DD parses back to itself."""
    assert parse_birth_date(born.isoformat(), TODAY) == born


@pytest.mark.parametrize(
    ("born", "today", "years"),
    [
        (dt.date(2008, 11, 30), dt.date(2026, 11, 29), 17),
        (dt.date(2008, 11, 29), dt.date(2026, 11, 29), 18),
        (dt.date(2008, 2, 29), dt.date(2026, 2, 28), 17),
        (dt.date(2008, 2, 29), dt.date(2026, 3, 1), 18),
    ],
)
def test_age_in_years_counts_completed_years(born, today, years):
    """The age turns on the birthday (1 March for 29 February in a common year)."""
    assert age_in_years(born, today) == years


def test_the_bundled_table_defaults_to_18():
    """The shipped ages.toml loads; an unlisted country needs 18, a listed one its own age."""
    policy = AgePolicy.load()
    assert policy.default_min_age == 18
    assert policy.min_age("DE") == 18
    assert policy.min_age("kr") == 19
    assert all(age >= 18 for age in policy.min_ages.values())
    assert policy.retry_block_seconds > 0


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"policy_version": 1, "default_min_age": 18, "retry_block_hours": 1, "extra": 1}, "extra"),
        ({"policy_version": "1", "default_min_age": 18, "retry_block_hours": 1}, "policy_version"),
        ({"policy_version": 1, "default_min_age": 99, "retry_block_hours": 1}, "default_min_age"),
        ({"policy_version": 1, "default_min_age": 18, "retry_block_hours": True}, "retry_block_hours"),
        (
            {"policy_version": 1, "default_min_age": 18, "retry_block_hours": 1, "min_age": {"DEU": 18}},
            "min_age.DEU",
        ),
        (
            {"policy_version": 1, "default_min_age": 18, "retry_block_hours": 1, "min_age": {"DE": "18"}},
            "min_age.DE",
        ),
    ],
)
def test_a_bad_table_names_the_key(raw, key):
    """An unknown key or a wrong value in the ages table is an error naming the key."""
    with pytest.raises(ConfigError, match=key):
        AgePolicy.from_dict(raw, "ages.toml")


def test_a_written_marker_blocks_until_its_time_everywhere(tmp_path):
    """Both copies hold the time only; the block holds until then and not after."""
    block = RetryBlock((tmp_path / "state" / "m", tmp_path / "cache" / "m"))
    now = 1_800_000_000.0
    assert block.blocked_until(now, 24 * HOUR) is None
    assert len(block.write(now + 24 * HOUR, 1)) == 2
    for path in block.paths:
        assert json.loads(path.read_text()) == {"blocked_until": int(now + 24 * HOUR), "policy_version": 1}
    assert block.blocked_until(now + HOUR, 24 * HOUR) == int(now + 24 * HOUR)
    assert block.blocked_until(now + 25 * HOUR, 24 * HOUR) is None


def test_one_copy_is_enough_to_block(tmp_path):
    """Deleting one copy leaves the block in force, and missing() names the gone copy."""
    block = RetryBlock((tmp_path / "a", tmp_path / "b"))
    block.write(2_000_000_000, 1)
    block.paths[0].unlink()
    assert block.blocked_until(1_900_000_000, HOUR) == 2_000_000_000
    assert block.missing() == [block.paths[0]]


def test_an_edited_marker_blocks_a_full_period_from_its_change(tmp_path):
    """Garbage, or a time set into the past, blocks for the whole period from the file's mtime."""
    garbage, backdated = tmp_path / "g", tmp_path / "b"
    garbage.write_text("not json")
    backdated.write_text(json.dumps({"blocked_until": 1, "policy_version": 1}))
    mtime = 1_800_000_000
    huge = tmp_path / "h"
    huge.write_text(json.dumps({"blocked_until": 10**400, "policy_version": 1}))
    for path in (garbage, backdated, huge):
        os.utime(path, (mtime, mtime))
        assert RetryBlock((path,)).blocked_until(mtime + HOUR, 24 * HOUR) == mtime + 24 * HOUR


def test_clear_expired_removes_only_ended_blocks(tmp_path):
    """An ended block's copy goes; one still in force stays."""
    ended, active = RetryBlock((tmp_path / "ended",)), RetryBlock((tmp_path / "active",))
    ended.write(1_800_000_000, 1)
    active.write(1_900_000_000, 1)
    for block in (ended, active):
        os.utime(block.paths[0], (1_700_000_000, 1_700_000_000))
    assert ended.clear_expired(1_850_000_000, HOUR) == [ended.paths[0]]
    assert active.clear_expired(1_850_000_000, HOUR) == []
    assert active.paths[0].exists() and not ended.paths[0].exists()


_MTIME = 1_800_000_000


def _expected_block(content: bytes) -> float:
    """What a marker holding ``content`` (mtime _MTIME) blocks until, by the documented rule."""
    try:
        doc = json.loads(content.decode("utf-8"))
    except ValueError:
        return _MTIME + HOUR
    value = doc.get("blocked_until") if isinstance(doc, dict) else None
    if type(value) is not int or not _MTIME <= value < 1 << 40:
        return _MTIME + HOUR
    return float(value)


@given(
    st.binary(max_size=200)
    | st.builds(lambda v: json.dumps({"blocked_until": v}).encode(), st.integers() | st.floats() | st.text())
)
def test_any_marker_content_blocks_a_period_or_until_its_time(tmp_path_factory, content):
    """Whatever a marker holds, reading it never raises; an unreadable or backdated one blocks a period."""
    path = tmp_path_factory.mktemp("marker") / "m"
    path.write_bytes(content)
    os.utime(path, (_MTIME, _MTIME))
    assert RetryBlock((path,)).blocked_until(0.0, HOUR) == _expected_block(content)


@given(
    st.dictionaries(
        st.sampled_from(["policy_version", "default_min_age", "retry_block_hours", "min_age", "x"]),
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats()
        | st.text(max_size=4)
        | st.dictionaries(st.text(max_size=3), st.integers() | st.text(max_size=3), max_size=3),
    )
)
def test_the_ages_loader_raises_only_config_errors(raw):
    """Any parsed document either loads into a sane policy or raises ConfigError."""
    try:
        policy = AgePolicy.from_dict(raw, "ages.toml")
    except ConfigError:
        return
    assert 1 <= policy.default_min_age <= 30 and policy.retry_block_seconds >= 0


def test_a_place_that_cannot_be_written_is_skipped(tmp_path):
    """A marker place under a file (not a directory) is skipped; the other copy is written."""
    (tmp_path / "file").write_text("")
    block = RetryBlock((tmp_path / "file" / "m", tmp_path / "ok" / "m"))
    assert block.write(2_000_000_000, 1) == [tmp_path / "ok" / "m"]
