"""The service dispatcher: futures from any thread, priorities, reloads without loss, a clean stop."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path

import pytest
from samples import eicar

from agent import config
from agent.dispatch import Dispatcher, Feed, Priority
from agent.engine import IDLE, load_rules
from agent.model import Outcome, ScanRequest, Source, StatKey, VerdictKind


@pytest.fixture
def dispatcher(agent_home: Path):
    cfg = config.load()
    d = Dispatcher(cfg, load_rules(cfg.rules_dir))
    d.start()
    yield d
    d.stop(10.0)


def _file(tmp_path: Path, name: str, data: bytes) -> ScanRequest:
    path = tmp_path / name
    path.write_bytes(data)
    return ScanRequest(path=str(path), source=Source.ON_ACCESS, stat=StatKey.of(path.stat()))


def test_stream_and_file_requests_resolve_to_their_own_outcomes(dispatcher: Dispatcher, tmp_path: Path):
    """Each future gets the outcome of the request it was returned for."""
    bad = dispatcher.submit(ScanRequest(path="stream", source=Source.STREAM, data=eicar()))
    good = dispatcher.submit(ScanRequest(path="stream", source=Source.STREAM, data=b"hello world\n"))
    on_disk = dispatcher.submit(_file(tmp_path, "x.com", eicar()))
    assert bad.result(60).verdict.kind is VerdictKind.MALICIOUS
    assert good.result(60).verdict.kind is VerdictKind.CLEAN
    assert "EICAR_Test_File" in {d.name for d in on_disk.result(60).verdict.detections}
    assert bad.result().request.data is None  # the stream's bytes do not come back from the worker
    assert dispatcher.counters.scanned["stream"] == 2


def test_submissions_from_many_threads_all_resolve(dispatcher: Dispatcher):
    """Concurrent submitters each get an outcome; none is lost."""
    futures: list[Future[Outcome]] = []
    lock = threading.Lock()

    def submit_some(n: int) -> None:
        for i in range(50):
            f = dispatcher.submit(ScanRequest(path="stream", source=Source.STREAM, data=b"%d-%d" % (n, i)))
            with lock:
                futures.append(f)

    threads = [threading.Thread(target=submit_some, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kinds = {f.result(60).verdict.kind for f in futures}
    assert len(futures) == 200
    assert kinds == {VerdictKind.CLEAN}


def test_rules_swap_under_load_fails_no_scan(dispatcher: Dispatcher, agent_home: Path, tmp_path: Path):
    """Objects submitted around a rules swap are all scanned, and later ones use the new rules."""
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "t.yar").write_text('rule Canary_Marker { strings: $a = "canary-marker-77" condition: $a }')
    before = [
        dispatcher.submit(ScanRequest(path="stream", source=Source.STREAM, data=b"x%d" % i))
        for i in range(100)
    ]
    dispatcher.swap_rules(load_rules(rules_dir))
    after = [dispatcher.submit(ScanRequest(path="stream", source=Source.STREAM, data=b"canary-marker-77"))]
    outcomes = [f.result(60) for f in [*before, *after]]
    assert all(o.verdict.kind is not VerdictKind.UNSCANNED for o in outcomes)
    assert outcomes[-1].verdict.detections[0].name == "Canary_Marker"


def test_stop_answers_queued_requests_as_unscanned(agent_home: Path):
    """Requests still queued when the service stops are answered unscanned, never clean or lost."""
    cfg = config.load()
    d = Dispatcher(cfg, load_rules(cfg.rules_dir))
    d.start()
    futures = [
        d.submit(ScanRequest(path="stream", source=Source.STREAM, data=b"y%d" % i)) for i in range(2000)
    ]
    d.stop(10.0)
    kinds = {f.result(1).verdict.kind for f in futures}
    assert kinds <= {VerdictKind.CLEAN, VerdictKind.UNSCANNED}
    late = d.submit(ScanRequest(path="stream", source=Source.STREAM, data=b"z"))
    assert late.result(1).verdict.kind is VerdictKind.UNSCANNED


def test_feed_serves_urgent_before_background_then_idles():
    """The feed yields urgent work first, background next, then IDLE, and ends when closed."""
    feed = Feed()
    try:
        feed.put(ScanRequest(path="sweep"), Priority.BACKGROUND)
        feed.put(ScanRequest(path="stream"), Priority.URGENT)
        it = iter(feed)
        assert [next(it).path, next(it).path] == ["stream", "sweep"]
        assert next(it) is IDLE
        feed.close()
        assert list(it) == []
    finally:
        feed.shutdown()


def test_idle_workers_retire_and_come_back(agent_home: Path, tmp_path: Path):
    """After worker_idle_retire seconds without work the workers exit; the next object starts them again."""
    import time

    import psutil

    agent_home.mkdir(parents=True)
    (agent_home / "agent.toml").write_text("[service]\nworker_idle_retire = 0.5\n")
    cfg = config.load()
    d = Dispatcher(cfg, load_rules(cfg.rules_dir))
    d.start()
    try:
        me = psutil.Process()

        def workers() -> int:
            return sum("spawn_main" in " ".join(p.cmdline()) for p in me.children())

        assert d.submit(ScanRequest(path="stream", source=Source.STREAM, data=b"a")).result(60)
        assert workers() == 2 or cfg.jobs != 2
        deadline = time.monotonic() + 30
        while workers() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert workers() == 0
        again = d.submit(ScanRequest(path="stream", source=Source.STREAM, data=eicar())).result(60)
        assert again.verdict.kind is VerdictKind.MALICIOUS
    finally:
        d.stop(10.0)
