"""Every fuzz target (the atheris harnesses' too) on random bytes and on mutated valid seeds.

Example counts come from ``fuzz_profile``: a fast run by default, ``HYPOTHESIS_PROFILE=deep`` for long ones.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile

import fuzz_targets
import pytest
from fuzz_profile import FUZZ
from hypothesis import given
from hypothesis import strategies as st

SEEDS = fuzz_targets.seeds()


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    """A seed with byte flips, cuts and random insertions."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 10))):
        op = draw(st.integers(0, 3))
        pos = draw(st.integers(0, len(data)))
        if op == 0 and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif op == 1:
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == 2:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        else:
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 256))]  # duplicate a run
    return bytes(data)


@pytest.mark.parametrize("name", sorted(fuzz_targets.TARGETS))
def test_valid_seeds_pass_their_target(name):
    """The seeds themselves meet each target's contract (so mutations start from real inputs)."""
    for seed in SEEDS[name]:
        fuzz_targets.TARGETS[name](seed)


@pytest.mark.parametrize("name", sorted(fuzz_targets.TARGETS))
@FUZZ
@given(data=st.data())
def test_random_bytes_meet_the_contract(name, data):
    """Arbitrary bytes give each parser's result or its own error, nothing else."""
    fuzz_targets.TARGETS[name](data.draw(st.binary(max_size=4096)))


@pytest.mark.parametrize("name", sorted(fuzz_targets.TARGETS))
@FUZZ
@given(data=st.data())
def test_mutated_seeds_meet_the_contract(name, data):
    """Damaged valid inputs give each parser's result or its own error, nothing else."""
    fuzz_targets.TARGETS[name](data.draw(mutated(SEEDS[name])))


def test_gzip_tar_seed_is_walked():
    """The archive seeds really reach the walker (a guard against seeds that are all refused early)."""
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(SEEDS["archives"][1]))) as tf:
        assert tf.getnames() == ["x.txt"]
    assert zipfile.is_zipfile(io.BytesIO(SEEDS["archives"][0]))
