"""The settle queue: debouncing, coalescing, a hard bound and no silent loss."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import ConfigError
from agent.sources.settle import ItemKind, SettledItem, SettleQueue, SettleSettings

FAR = 1e9  # a clock time at which everything is ready


def _queue(max_paths: int = 100, delay: float = 1.0, max_delay: float = 30.0) -> SettleQueue:
    return SettleQueue(
        SettleSettings(delay=delay, max_delay=max_delay, max_paths=max_paths), clock=lambda: 0.0
    )


def _drain(q: SettleQueue, now: float = FAR) -> list[SettledItem]:
    out: list[SettledItem] = []
    while batch := q.take_ready(now, max_items=7):
        out.extend(batch)
    return out


def _check_counts(q: SettleQueue) -> None:
    s = q.stats()
    assert s.offered == s.admitted + s.coalesced + s.overflowed
    assert s.queued == s.admitted + s.markers - s.emitted - s.folded
    assert s.queued == len(q)


def test_a_thousand_writes_settle_into_one_item():
    """A thousand events for one file give one item, and only after the file has been quiet."""
    q = _queue()
    for i in range(1000):
        q.offer("/r/big.log", now=i * 0.001)
        assert q.take_ready(now=i * 0.001) == []
    assert q.take_ready(now=0.999 + 0.5) == []
    assert q.take_ready(now=0.999 + 1.0) == [SettledItem("/r/big.log", ItemKind.FILE, 1000)]
    assert q.take_ready(now=FAR) == []
    s = q.stats()
    assert (s.offered, s.admitted, s.coalesced, s.emitted, s.queued) == (1000, 1, 999, 1, 0)


def test_max_delay_caps_a_file_written_forever():
    """A file that never goes quiet is still emitted max_delay after its first event."""
    q = _queue(delay=1.0, max_delay=5.0)
    items = []
    for i in range(100):
        q.offer("/r/app.log", now=i * 0.5)
        items += q.take_ready(now=i * 0.5)
    assert [i.path for i in items] == ["/r/app.log"] * len(items)
    assert 9 <= len(items) <= 10


def test_items_come_out_oldest_first_and_in_batches():
    """Ready items are handed out by age, at most max_items at a time."""
    q = _queue()
    for i, name in enumerate(["a", "b", "c", "d"]):
        q.offer(f"/r/{name}", now=float(i))
    q.offer("/r/a", now=4.0)  # a is now the youngest
    assert [i.path for i in q.take_ready(now=10.0, max_items=2)] == ["/r/b", "/r/c"]
    assert [i.path for i in q.take_ready(now=10.0, max_items=2)] == ["/r/d", "/r/a"]
    assert q.take_ready(now=10.0, max_items=0) == []


def test_full_queue_folds_siblings_into_a_directory_entry():
    """When full, a new file replaces its queued siblings with one rescan of their directory."""
    q = _queue(max_paths=3)
    for name in ["a", "b"]:
        q.offer(f"/r/d/{name}", now=0.0)
    q.offer("/r/other", now=0.0)
    q.offer("/r/d/c", now=0.5)  # full: /r/d/a and /r/d/b fold into a /r/d entry
    assert len(q) == 2
    q.offer("/r/d/e", now=0.6)  # covered by the directory entry
    q.offer("/r/d/sub/f", now=0.7)  # so is anything below it
    items = {(i.path, i.kind, i.events) for i in _drain(q)}
    assert items == {("/r/other", ItemKind.FILE, 1), ("/r/d", ItemKind.DIRECTORY, 5)}
    s = q.stats()
    assert (s.admitted, s.coalesced, s.overflowed, s.markers, s.folded) == (3, 2, 1, 1, 2)
    _check_counts(q)


def test_full_queue_without_siblings_asks_for_a_sweep():
    """When full and nothing can fold, the sweep flag is set and counted; nothing is dropped."""
    q = _queue(max_paths=2)
    q.offer("/r/a/1", now=0.0)
    q.offer("/r/b/1", now=0.0)
    q.offer("/r/c/1", now=0.0)
    assert q.stats().needs_sweep
    q.offer("/r/d/1", now=0.1)  # absorbed by the pending sweep
    items = _drain(q)
    assert items[0] == SettledItem("", ItemKind.SWEEP, 2)
    assert {i.path for i in items[1:]} == {"/r/a/1", "/r/b/1"}
    s = q.stats()
    assert (s.overflowed, s.coalesced, s.sweeps, s.needs_sweep) == (1, 1, 1, False)
    _check_counts(q)


def test_directory_offer_folds_its_queued_files():
    """Offering a directory replaces the queued files directly in it, even when the queue is full."""
    q = _queue(max_paths=2)
    q.offer("/r/d/a", now=0.0)
    q.offer("/r/d/b", now=0.0)
    q.offer("/r/d", now=0.1, directory=True)
    assert len(q) == 1
    assert _drain(q) == [SettledItem("/r/d", ItemKind.DIRECTORY, 3)]
    _check_counts(q)


def test_request_sweep_yields_one_sweep_item_after_settling():
    """An upstream loss report becomes a single sweep item once the reports stop."""
    q = _queue(delay=1.0)
    q.request_sweep(now=0.0)
    q.request_sweep(now=0.5)
    assert q.take_ready(now=1.2) == []
    assert q.take_ready(now=1.5) == [SettledItem("", ItemKind.SWEEP, 2)]
    assert q.stats().sweeps == 1


def test_next_deadline_tracks_the_oldest_entry():
    """next_deadline is None when empty, else when the first item becomes ready."""
    q = _queue(delay=1.0, max_delay=5.0)
    assert q.next_deadline() is None
    q.offer("/r/a", now=2.0)
    assert q.next_deadline() == 3.0
    q.offer("/r/a", now=4.5)
    assert q.next_deadline() == 5.5
    q.offer("/r/a", now=6.8)
    assert q.next_deadline() == 7.0  # the max_delay cap


def test_empty_path_is_rejected():
    """An empty path is a caller bug, not an event."""
    with pytest.raises(ValueError, match="empty"):
        _queue().offer("")


@pytest.mark.parametrize(
    "kwargs", [{"delay": -1.0}, {"delay": 2.0, "max_delay": 1.0}, {"max_paths": 0}], ids=str
)
def test_bad_settings_are_config_errors(kwargs):
    """Impossible timing or bounds are rejected with ConfigError."""
    with pytest.raises(ConfigError):
        SettleSettings(**kwargs)


def test_wait_wakes_on_offer_and_on_deadline():
    """A waiting consumer wakes for a new entry and again when it settles (real clock)."""
    q = SettleQueue(SettleSettings(delay=0.05))
    woke = threading.Event()

    def consumer():
        q.wait(timeout=30)
        woke.set()

    t = threading.Thread(target=consumer)
    t.start()
    q.offer("/r/a")
    assert woke.wait(30)
    t.join(30)
    while not q.wait(timeout=30):
        pass
    assert [i.path for i in q.take_ready()] == ["/r/a"]


def test_close_releases_a_waiting_consumer():
    """close() wakes a consumer blocked without a timeout, and later waits return at once."""
    q = SettleQueue()
    t = threading.Thread(target=q.wait)
    t.start()
    q.close()
    t.join(30)
    assert not t.is_alive()
    assert q.wait() is False


def test_concurrent_producers_lose_nothing():
    """Several producer threads and a consumer: every path is emitted or covered by a marker."""
    q = SettleQueue(SettleSettings(delay=0.0, max_paths=50))
    offered = [f"/r/d{t}/f{i}" for t in range(4) for i in range(500)]

    def produce(t: int) -> None:
        for i in range(500):
            q.offer(f"/r/d{t}/f{i}")

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
    got: list[SettledItem] = []
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        got += q.take_ready()
    for t in threads:
        t.join()
    got += _drain(q)
    assert not _uncovered(offered, got)
    _check_counts(q)


def _uncovered(paths: list[str], items: list[SettledItem]) -> set[str]:
    if any(i.kind is ItemKind.SWEEP for i in items):
        return set()
    files = {i.path for i in items if i.kind is ItemKind.FILE}
    dirs = [i.path + "/" for i in items if i.kind is ItemKind.DIRECTORY]
    return {p for p in paths if p not in files and not any(p.startswith(d) for d in dirs)}


_PATHS = st.sampled_from(["/r/a", "/r/b", "/r/d/a", "/r/d/b", "/r/d/c", "/r/d/e/f", "/r/x/y", "/s/z"])
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("offer"), _PATHS, st.floats(0, 2), st.booleans()),
        st.tuples(st.just("take"), st.integers(0, 4), st.floats(0, 2), st.just(False)),
        st.tuples(st.just("sweep"), st.just(0), st.floats(0, 2), st.just(False)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops=_OPS, max_paths=st.integers(1, 5), delay=st.floats(0, 1), extra=st.floats(0, 3))
def test_property_nothing_is_lost_and_the_bound_holds(ops, max_paths, delay, extra):
    """For any offers and takes, every offer is later covered by an emitted item, within the bound."""
    q = SettleQueue(
        SettleSettings(delay=delay, max_delay=delay + extra, max_paths=max_paths), clock=lambda: 0.0
    )
    now = 0.0
    pending: set[str] = set()
    for op, arg, dt, directory in ops:
        now += dt
        if op == "offer":
            q.offer(arg, now, directory=directory)
            pending.add(arg)
        elif op == "sweep":
            q.request_sweep(now)
        else:
            for item in q.take_ready(now, max_items=arg):
                pending -= _covered_by(item, pending)
        assert len(q) <= max_paths
        _check_counts(q)
    for item in _drain(q, now + delay + extra + 1):
        pending -= _covered_by(item, pending)
    assert not pending
    assert len(q) == 0


def _covered_by(item: SettledItem, pending: set[str]) -> set[str]:
    if item.kind is ItemKind.SWEEP:
        return set(pending)
    if item.kind is ItemKind.DIRECTORY:
        return {p for p in pending if p == item.path or p.startswith(item.path + "/")}
    return {item.path}
