"""The cloud's parts in isolation: rate buckets, bounded gzip, the prefix-list delta log, imports."""

from __future__ import annotations

import ast
import contextlib
import gzip
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.minimize.wire import decode_batch
from cloud.body import gunzip_bounded
from cloud.errors import RequestRejected
from cloud.ratelimit import RateLimiter
from cloud.reputation import REPUTATION_SCHEMA, ReputationStore
from cloud.schema import MAX_BATCH, decode_records
from cloud.store import RecordStore

pytest_plugins = ["cloud_fixtures"]
CLOUD = Path(__file__).resolve().parents[2] / "cloud"


class Clock:
    """A clock the test advances by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_says_how_long_to_wait():
    """A fresh key gets `burst` requests, then a wait that refilling at `rate` would end."""
    clock = Clock()
    limiter = RateLimiter(rate=0.5, burst=3, clock=clock)
    assert [limiter.acquire(b"k") for _ in range(3)] == [0, 0, 0]
    assert limiter.acquire(b"k") == 2
    clock.now += 2
    assert limiter.acquire(b"k") == 0
    assert limiter.acquire(b"other") == 0


def test_a_bucket_never_holds_more_than_its_burst():
    """A long idle time refills the bucket only up to `burst`."""
    clock = Clock()
    limiter = RateLimiter(rate=10, burst=2, clock=clock)
    limiter.acquire(b"k")
    clock.now += 3600
    assert [limiter.acquire(b"k") for _ in range(3)] == [0, 0, 1]


def test_the_limiter_forgets_the_oldest_keys_past_its_bound():
    """Past `max_keys` the least recently used bucket is dropped, so memory stays bounded."""
    limiter = RateLimiter(rate=1, burst=1, clock=Clock(), max_keys=2)
    for key in (b"a", b"b", b"c"):
        limiter.acquire(key)
    assert limiter.acquire(b"a") == 0
    assert limiter.acquire(b"c") == 1


@given(st.binary(max_size=5000), st.integers(min_value=1, max_value=6000))
def test_gunzip_bounded_inflates_exactly_or_refuses(data, limit):
    """Valid gzip inflates to the original when it fits and is refused with 413 when it does not."""
    packed = gzip.compress(data)
    if len(data) <= limit:
        assert gunzip_bounded(packed, limit) == data
    else:
        with pytest.raises(RequestRejected) as refused:
            gunzip_bounded(packed, limit)
        assert refused.value.status == 413


@given(st.binary(max_size=300))
def test_gunzip_bounded_refuses_garbage_with_400_or_413(data):
    """Arbitrary bytes either inflate or are refused as a 4xx RequestRejected, nothing else."""
    assert _gunzip_status(data) in {200, 400, 413}


def _gunzip_status(data: bytes) -> int:
    try:
        gunzip_bounded(data, 1000)
    except RequestRejected as exc:
        return exc.status
    return 200


def test_gunzip_bounded_never_inflates_a_bomb_past_the_cap():
    """A 256 MiB bomb is refused after inflating at most the cap."""
    bomb = zlib.compressobj(9, zlib.DEFLATED, 31)
    packed = b"".join(bomb.compress(b"\0" * (1 << 20)) for _ in range(256)) + bomb.flush()
    with pytest.raises(RequestRejected, match="inflated"):
        gunzip_bounded(packed, 1 << 20)


def test_the_batch_limit_matches_the_wire_schema(cloud_record):
    """The cloud's msgpack limit is the agent's JSON limit: MAX_BATCH decodes, one more does not."""
    import json

    import msgspec

    batch = [cloud_record() for _ in range(MAX_BATCH)]
    assert len(decode_batch(json.dumps(batch).encode())) == MAX_BATCH
    assert len(decode_records(msgspec.msgpack.encode(batch), "msgpack")) == MAX_BATCH
    over = [*batch, cloud_record()]
    with pytest.raises(msgspec.ValidationError):
        decode_batch(json.dumps(over).encode())
    with pytest.raises(msgspec.ValidationError):
        decode_records(msgspec.msgpack.encode(over), "msgpack")


_HASHES = [f"{p}{i:056x}" for p in ("00000000", "00000001", "ffffffff") for i in range(3)]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from(_HASHES)), max_size=25))
def test_every_delta_turns_the_old_list_into_the_new(tmp_path_factory, ops):
    """For any history of adds and removes, old list + delta(since old) == current list, versions only grow."""
    store = RecordStore(tmp_path_factory.mktemp("rep") / "r.db", REPUTATION_SCHEMA)
    try:
        reputation = ReputationStore(store.conn)
        snapshots = [reputation.prefixes()]
        for add, sha in ops:
            if add:
                reputation.add(sha, "Name")
            else:
                with (
                    pytest.raises(LookupError) if sha not in _active(reputation) else contextlib.nullcontext()
                ):
                    reputation.remove(sha)
            snapshots.append(reputation.prefixes())
        versions = [v for v, _ in snapshots]
        assert versions == sorted(versions)
        final_version, final = snapshots[-1]
        for version, listed in snapshots:
            delta = reputation.delta(version)
            assert delta.version == final_version
            assert sorted((set(listed) | set(delta.added)) - set(delta.removed)) == final
            assert not set(delta.added) & set(listed)
            assert set(delta.removed) <= set(listed)
    finally:
        store.close()


def _active(reputation: ReputationStore) -> set[str]:
    rows = reputation.conn.execute("SELECT sha256 FROM bad_hashes WHERE active = 1")
    return {sha for (sha,) in rows}


def test_search_finds_only_active_hashes_under_the_prefixes(tmp_path):
    """Search returns the active hashes under the asked prefixes and nothing else."""
    store = RecordStore(tmp_path / "r.db", REPUTATION_SCHEMA)
    try:
        reputation = ReputationStore(store.conn)
        for sha in _HASHES:
            reputation.add(sha, "Name")
        reputation.remove(_HASHES[0])
        found = {m.sha256 for m in reputation.search(["00000000", "abcdef01"])}
        assert found == set(_HASHES[1:3])
    finally:
        store.close()


def test_a_failed_batch_stores_nothing(tmp_path, cloud_record):
    """If storing a batch fails part-way, the transaction leaves no record of it."""
    import msgspec

    from agent.minimize.wire import Record

    store = RecordStore(tmp_path / "r.db")
    try:
        good = msgspec.convert(cloud_record(), Record)
        store.conn.execute("CREATE TRIGGER fail BEFORE INSERT ON records WHEN (SELECT count(*) FROM records) >= 1 "
                           "BEGIN SELECT RAISE(ABORT, 'disk full'); END")  # fmt: skip
        with pytest.raises(Exception, match="disk full"):
            store.store_batch([good, msgspec.convert(cloud_record(), Record)])
        assert store.conn.execute("SELECT count(*) FROM records").fetchone() == (0,)
    finally:
        store.close()


def _agent_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] == "agent"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "agent":
            found.append(node.module or "")
    return found


def test_the_cloud_imports_only_the_wire_schema_from_the_agent():
    """Across cloud/, the agent modules imported are the wire schemas (verdicts, analytics), only in schema.py."""
    imports = {p.name: _agent_imports(p) for p in sorted(CLOUD.rglob("*.py"))}
    assert "schema.py" in imports
    assert {name: found for name, found in imports.items() if found} == {
        "schema.py": ["agent.minimize.analytics", "agent.minimize.wire"]
    }
