"""Device pseudonyms: keyed, stable within a period, unlinkable across periods without the secret."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import ConfigError
from agent.minimize import MasterSecret, period_label


def test_secret_file_is_created_0600_and_reused(tmp_path):
    """The master secret is created once, mode 0600, and the same secret is loaded next time."""
    first = MasterSecret.load_or_create(tmp_path)
    mode = stat.S_IMODE(os.stat(tmp_path / "master.key").st_mode)
    assert mode == 0o600
    assert len((tmp_path / "master.key").read_bytes()) == 32
    assert MasterSecret.load_or_create(tmp_path).pseudonym("verdicts", "2026-11") == first.pseudonym(
        "verdicts", "2026-11"
    )


def test_world_readable_secret_is_refused(tmp_path):
    """A master secret readable by others is refused rather than used."""
    MasterSecret.load_or_create(tmp_path)
    os.chmod(tmp_path / "master.key", 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        MasterSecret.load_or_create(tmp_path)


@given(
    st.binary(min_size=32, max_size=32), st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20)
)
def test_pseudonym_is_stable_per_key_and_period(secret, p1, p2):
    """Same secret and period give the same pseudonym; another period gives another one."""
    ms = MasterSecret(secret)
    assert ms.pseudonym("verdicts", p1) == ms.pseudonym("verdicts", p1)
    if p1 != p2:
        assert ms.pseudonym("verdicts", p1) != ms.pseudonym("verdicts", p2)


def test_periods_cannot_be_linked_without_the_secret():
    """Without the secret, nothing computable from the period alone reproduces the pseudonym."""
    a, b = MasterSecret(os.urandom(32)), MasterSecret(os.urandom(32))
    p = "2026-11"
    assert a.pseudonym("verdicts", p) != b.pseudonym("verdicts", p)
    assert a.pseudonym("verdicts", p) not in {
        hashlib.sha256(p.encode()).hexdigest()[:32],
        hashlib.md5(p.encode()).hexdigest(),
    }


def test_domains_get_separate_keys():
    """HKDF gives each domain its own key, so log tokens and pseudonyms are unrelated."""
    ms = MasterSecret(os.urandom(32))
    assert ms.key("verdicts") != ms.key("logs")
    assert len(ms.key("verdicts")) == 32


@pytest.mark.parametrize(
    ("period", "expected"),
    [("month", "2026-11"), ("week", "2026-W48"), ("day", "2026-11-29")],
)
def test_period_labels(period, expected):
    """Rotation periods are UTC calendar months, ISO weeks or days."""
    when = dt.datetime(2026, 11, 29, 23, 30, tzinfo=dt.UTC)
    assert period_label(when, period) == expected
