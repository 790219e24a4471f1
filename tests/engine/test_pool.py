"""The worker pool contains crashes and hangs and keeps going."""

from __future__ import annotations

import socket

import pool_helpers
import pytest

from agent.engine import Failure, WorkerPool


def _run(items, jobs=2, timeout=5.0):
    with WorkerPool(jobs, pool_helpers.setup_echo, "p", timeout) as pool:
        results = dict(pool.map_unordered(items))
        return results, pool.restarts


def test_every_item_gets_a_result():
    """Each of many items yields exactly one result, computed by a worker."""
    items = [f"i{n}" for n in range(500)]
    results, restarts = _run(items)
    assert results == {i: f"p:{i}" for i in items}
    assert restarts == 0


@pytest.mark.parametrize("bad", ["crash", "exit"])
def test_a_crashing_item_fails_alone(bad):
    """A worker that dies takes only its current item with it; the rest still get results."""
    items = [f"a{n}" for n in range(40)] + [bad] + [f"b{n}" for n in range(40)]
    results, restarts = _run(items)
    assert isinstance(results[bad], Failure)
    assert results[bad].kind == "crashed"
    assert "SIGKILL" in results[bad].detail or "status 3" in results[bad].detail
    assert restarts == 1
    assert all(results[i] == f"p:{i}" for i in items if i != bad)


def test_a_hanging_item_times_out_and_the_pool_recovers():
    """An item past the time limit is reported as a timeout and its worker is replaced."""
    items = ["x1", "hang", "x2", "x3"]
    results, restarts = _run(items, jobs=1, timeout=1.0)
    assert results["hang"] == Failure("timeout", "scan time limit exceeded")
    assert [results[i] for i in ("x1", "x2", "x3")] == ["p:x1", "p:x2", "p:x3"]
    assert restarts == 1


def test_empty_input_yields_nothing():
    """No items, no results, no hang."""
    results, _ = _run([])
    assert results == {}


def test_results_buffered_before_a_crash_are_not_misattributed():
    """Items finished just before a crash are rescanned, not failed: only the crashing item fails."""
    items = ["a", "b", "c", "crash", "d"]
    results, restarts = _run(items, jobs=1)
    assert isinstance(results["crash"], Failure)
    assert {k: v for k, v in results.items() if k != "crash"} == {i: f"p:{i}" for i in "abcd"}
    assert restarts == 1


def test_workers_that_cannot_start_fail_the_queue_instead_of_looping():
    """When every worker dies before any item, the pool gives up with a clear failure, not a loop."""
    with WorkerPool(1, pool_helpers.setup_broken, None, 5.0) as pool:
        results = dict(pool.map_unordered(["x", "y"]))
    assert set(results) == {"x", "y"}
    assert all(isinstance(r, Failure) and "failing to start" in r.detail for r in results.values())


def test_heavy_items_are_spread_over_workers():
    """Items weighing more than a batch's weight go out one per batch, so both workers get some."""
    items = [f"big{n}" for n in range(6)]
    with WorkerPool(2, pool_helpers.setup_pid, None, 10.0, weight=lambda _i: 64 << 20) as pool:
        pids = {result for _, result in pool.map_unordered(items)}
    assert len(pids) == 2


def _weigh(item: str) -> int:
    return int(item.split(":")[1])


def _intervals(items, max_inflight):
    with WorkerPool(
        2, pool_helpers.setup_interval, None, 10.0, weight=_weigh, max_inflight=max_inflight
    ) as pool:
        return dict(pool.map_unordered(items))


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_items_out_at_once_stay_within_the_weight_budget():
    """Files of 80 MiB never go out together under a 100 MiB budget (small files share the queue)."""
    items = [f"big{n}:{80 << 20}" for n in range(3)] + [f"small{n}:{1 << 10}" for n in range(20)]
    got = _intervals(items, max_inflight=100 << 20)
    assert set(got) == set(items)
    bigs = [got[item] for item in items if item.startswith("big")]
    assert not any(_overlap(a, b) for i, a in enumerate(bigs) for b in bigs[i + 1 :])


def test_without_a_budget_heavy_items_go_out_together():
    """The control: with no budget both workers take a big item at once."""
    items = [f"big{n}:{80 << 20}" for n in range(2)]
    got = _intervals(items, max_inflight=0)
    assert _overlap(got[items[0]], got[items[1]])


def test_an_item_heavier_than_the_budget_still_goes_out_alone():
    items = [f"big0:{500 << 20}", f"big1:{500 << 20}", f"small:{1 << 10}"]
    got = _intervals(items, max_inflight=100 << 20)
    assert set(got) == set(items)
    assert not _overlap(got[items[0]], got[items[1]])


def test_a_full_queue_waits_for_results_not_for_a_readable_wakeup(monkeypatch):
    """A streaming source with more ready than the queue holds keeps its wakeup readable; the pool must
    sleep until a worker answers rather than spin on it."""
    wakeup, poke = socket.socketpair()
    poke.send(b"\0")  # readable for the whole run: nobody drains it
    items = [f"big{n}:{1 << 10}" for n in range(4)] + [f"small{n}:{1 << 10}" for n in range(200)]
    rounds = 0
    with WorkerPool(2, pool_helpers.setup_interval, None, 10.0, weight=_weigh) as pool:
        collect = pool._collect

        def counted(*args, **kwargs):
            nonlocal rounds
            rounds += 1
            return collect(*args, **kwargs)

        monkeypatch.setattr(pool, "_collect", counted)
        got = dict(pool.map_unordered(iter(items), wakeup))
    wakeup.close()
    poke.close()
    assert set(got) == set(items)
    assert rounds < 500  # a spinning loop makes hundreds of thousands while the 0.5 s items run


def _run_balloon(items, max_rss=100 << 20):
    with WorkerPool(2, pool_helpers.setup_balloon, None, 60.0, max_rss=max_rss) as pool:
        return dict(pool.map_unordered(items)), pool.restarts


def test_a_worker_over_its_memory_ceiling_is_recycled_and_the_item_fails_after_one_retry():
    """An item that blows the memory ceiling twice fails with ``memory``; the others are unharmed."""
    results, restarts = _run_balloon(["a", "balloon", "b", "c"])
    assert results["balloon"] == Failure("memory", "worker memory ceiling exceeded")
    assert [results[i] for i in ("a", "b", "c")] == ["ok:a", "ok:b", "ok:c"]
    assert restarts == 2


def test_an_item_that_fits_on_retry_succeeds(tmp_path):
    """The first breach retries the item in a fresh worker; a retry that fits gets its result."""
    item = f"once:{tmp_path / 'marker'}"
    results, restarts = _run_balloon([item, "x"])
    assert results[item] == f"ok:{item}"
    assert restarts == 1
