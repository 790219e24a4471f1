"""The on-access watcher on real directories with real watchdog (inotify) threads."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, without_dac_override
from structlog.testing import capture_logs

from agent.model import Source
from agent.sources import fs_watch
from agent.sources.fs_watch import FileWatcher, WatchSettings
from agent.sources.settle import ItemKind, SettledItem, SettleQueue, SettleSettings

FAR = 1e12
HANG_GUARD = 60.0


class FakeClock:
    """A settle-queue clock the test moves by hand, so settling needs no sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def eventually(predicate, what: str, timeout: float = HANG_GUARD):
    """Poll ``predicate`` until it holds; the timeout is only a hang guard."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        result = predicate()
        if result:
            return result
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def drain(q: SettleQueue) -> list[SettledItem]:
    out: list[SettledItem] = []
    while batch := q.take_ready(now=FAR):
        out.extend(batch)
    return out


def write(path: Path, data: bytes = b"x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture
def watch():
    """Build started watchers; stop them after the test and check no watchdog thread is left."""
    before = set(threading.enumerate())
    made: list[FileWatcher] = []

    def make(roots, *, settings=None, always_exclude=(), clock=None, max_paths=10_000, delay=0.05):
        q = SettleQueue(SettleSettings(delay=delay, max_paths=max_paths), clock=clock or time.monotonic)
        w = FileWatcher(
            [str(r) for r in roots], settings or WatchSettings(), q, always_exclude=always_exclude
        )
        made.append(w)
        w.start()
        return w, q

    yield make
    for w in made:
        w.stop()
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leaked, f"threads left after stop: {leaked}"


def test_thousand_small_writes_give_one_item(tmp_path, watch):
    """A file written in 1,000 writes is one item once it settles, whatever the event count."""
    root = tmp_path / "root"
    root.mkdir()
    clock = FakeClock()
    _, q = watch([root], clock=clock)
    fd = os.open(root / "big.log", os.O_WRONLY | os.O_CREAT, 0o600)
    for i in range(1000):
        os.write(fd, b"%d\n" % i)
    os.close(fd)
    write(root / "sentinel")
    eventually(lambda: len(q) == 2, "both files queued")
    assert q.take_ready(now=clock.now) == []  # nothing has settled yet
    items = {i.path: i for i in q.take_ready(now=FAR)}
    assert set(items) == {str(root / "big.log"), str(root / "sentinel")}
    assert items[str(root / "big.log")].kind is ItemKind.FILE
    assert items[str(root / "big.log")].events > 1
    assert q.stats().coalesced > 0


def test_move_into_a_root_queues_the_destination(tmp_path, watch):
    """A file moved in from outside, or renamed inside, is queued under its new path only."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    write(outside / "download.bin")
    w, q = watch([root])
    os.rename(outside / "download.bin", root / "sub" / "moved.bin")
    got = eventually(lambda: drain(q), "the moved-in file")
    assert [i.path for i in got] == [str(root / "sub" / "moved.bin")]
    os.rename(root / "sub" / "moved.bin", root / "renamed.bin")
    got = eventually(lambda: drain(q), "the renamed file")
    assert {i.path for i in got} == {str(root / "renamed.bin")}
    request = w.request_for(str(root / "renamed.bin"))
    assert request is not None and request.source is Source.ON_ACCESS and request.stat is not None


def test_moved_in_directory_is_one_rescan(tmp_path, watch):
    """A directory tree moved into a root is queued as a rescan of that directory, not file by file."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    for i in range(20):
        write(outside / "tree" / f"d{i % 3}" / f"f{i}")
    clock = FakeClock()
    w, q = watch([root], clock=clock)
    os.rename(outside / "tree", root / "tree")
    write(root / "sentinel")
    eventually(lambda: q.stats().offered >= 2 and len(q) == 2, "tree and sentinel queued")
    items = {(i.path, i.kind) for i in q.take_ready(now=FAR)}
    assert items == {(str(root / "tree"), ItemKind.DIRECTORY), (str(root / "sentinel"), ItemKind.FILE)}
    walked = sorted(r.path for r in w.walk(str(root / "tree")))
    assert walked == sorted(str(p) for p in (root / "tree").rglob("f*"))


def test_excluded_paths_produce_nothing(tmp_path, watch):
    """Writes under the state dir, to excluded globs and to excluded extensions are never queued."""
    root = tmp_path / "root"
    state = root / ".agent-state"
    for d in (state / "spool", root / "cache", root / "a" / "cache" / "deep"):
        d.mkdir(parents=True)
    settings = WatchSettings(exclude_globs=("*/cache/*",), exclude_extensions=("TMP", ".part"))
    w, q = watch([root], settings=settings, always_exclude=[str(state)], clock=FakeClock())
    write(state / "agent.db-wal")
    write(state / "spool" / "stream-1")
    write(root / "cache" / "blob")
    write(root / "a" / "cache" / "deep" / "blob")
    write(root / "doc.tmp")
    write(root / "movie.mkv.PART")
    (root / "cache" / "new-dir").mkdir()
    (state / "new-dir").mkdir()
    write(root / "sentinel")
    eventually(lambda: len(q) == 1, "the sentinel queued")
    assert [i.path for i in drain(q)] == [str(root / "sentinel")]
    assert w.stats().ignored >= 8
    assert w.request_for(str(state / "agent.db-wal")) is None
    assert w.excluded(str(state)) and not w.excluded(str(root / "cachet"))


@pytest.fixture
def fast_tmp(tmp_path):
    """A temporary directory on tmpfs when there is one: creating 100,000 files on disk is slow."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="fs-watch-", dir=shm))
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.mark.slow
def test_hundred_thousand_files_at_once_lose_nothing(fast_tmp, watch):
    """100,000 files created at once by another process: each is emitted or found by a rescan it asked for."""
    root = fast_tmp / "root"
    (root / "flood").mkdir(parents=True)
    count, max_paths = 100_000, 2_000
    _, q = watch([root], max_paths=max_paths, delay=0.05)
    seen: set[str] = set()  # files handed out, or found by the rescan a marker asked for
    kinds: list[ItemKind] = []
    done = threading.Event()
    peak = [0]

    def consume():
        while not done.is_set():
            q.wait(timeout=0.1)
            peak[0] = max(peak[0], len(q))
            for item in q.take_ready(max_items=512):
                kinds.append(item.kind)
                if item.kind is ItemKind.FILE:
                    seen.add(item.path)
                else:  # the service walks the directory, or sweeps the roots: list what is there now
                    for top, _, names in os.walk(item.path or str(root)):
                        seen.update(os.path.join(top, n) for n in names)

    consumer = threading.Thread(target=consume)
    consumer.start()
    script = "import os,sys\nd=sys.argv[1]\nfor i in range(int(sys.argv[2])):\n os.close(os.open(f'{d}/f{i}',os.O_WRONLY|os.O_CREAT,0o600))\n"
    try:
        subprocess.run(
            [sys.executable, "-c", script, str(root / "flood"), str(count)], check=True, timeout=120
        )
        files = {str(root / "flood" / f"f{i}") for i in range(count)}
        eventually(lambda: files <= seen, "every file emitted or rescanned", timeout=120)
    finally:
        done.set()
        consumer.join(HANG_GUARD)
    s = q.stats()
    assert peak[0] <= max_paths
    assert s.offered == s.admitted + s.coalesced + s.overflowed
    assert s.queued == s.admitted + s.markers - s.emitted - s.folded
    direct = kinds.count(ItemKind.FILE)
    assert direct == count or len(kinds) > direct  # anything not handed out was covered by a marker


def _collect_until(q: SettleQueue, wanted: tuple[str, ItemKind], what: str) -> set[tuple[str, ItemKind]]:
    got: set[tuple[str, ItemKind]] = set()

    def seen() -> bool:
        got.update((i.path, i.kind) for i in drain(q))
        return wanted in got

    eventually(seen, what)
    return got


def test_root_removed_and_recreated_is_watched_again(tmp_path, watch):
    """After its root is deleted, check_roots reports it lost, then restores it once it is back."""
    root = tmp_path / "root"
    root.mkdir()
    w, q = watch([root])
    with capture_logs() as logs:
        shutil.rmtree(root)
        w.check_roots()
        assert w.stats().roots_missing == 1
        root.mkdir()
        write(root / "early")  # written while unwatched: covered by the rescan of the root
        w.check_roots()
        _collect_until(q, (str(root), ItemKind.DIRECTORY), "the root rescan")
        write(root / "after")
        _collect_until(q, (str(root / "after"), ItemKind.FILE), "events flowing again")
    events = [e["event"] for e in logs]
    assert events == ["watch_root_lost", "watch_root_unavailable", "watch_root_restored"]
    assert all(e["root"] == 0 for e in logs)
    assert str(tmp_path) not in repr(logs)
    assert w.stats().roots_watched == 1


def test_root_replaced_between_checks_is_noticed(tmp_path, watch):
    """A root removed and recreated between two checks is rescheduled and its contents rescanned."""
    root = tmp_path / "root"
    root.mkdir()
    w, q = watch([root])
    shutil.rmtree(root)
    root.mkdir()
    write(root / "inside")

    def restored() -> bool:
        with capture_logs() as logs:
            w.check_roots()
        return any(e["event"] == "watch_root_restored" for e in logs)

    eventually(restored, "the root restored")
    _collect_until(q, (str(root), ItemKind.DIRECTORY), "a rescan of the whole root")
    write(root / "later")
    _collect_until(q, (str(root / "later"), ItemKind.FILE), "events flowing again")


def test_missing_root_is_retried(tmp_path, watch):
    """A root that does not exist at start is logged without its path and picked up when it appears."""
    root = tmp_path / "not-yet"
    with capture_logs() as logs:
        w, q = watch([root])
    assert [e["event"] for e in logs] == ["watch_root_unavailable"]
    assert logs[0]["root"] == 0 and str(tmp_path) not in repr(logs)
    assert w.stats().roots_missing == 1
    w.check_roots()  # still missing: not logged again
    root.mkdir()
    w.check_roots()
    assert w.stats().roots_watched == 1
    _collect_until(q, (str(root), ItemKind.DIRECTORY), "the rescan of the new root")
    write(root / "new")
    _collect_until(q, (str(root / "new"), ItemKind.FILE), "events from the late root")


def test_file_deleted_before_take_is_emitted_then_skipped(tmp_path, watch):
    """A file gone between event and take still comes out of the queue; request_for skips it."""
    root = tmp_path / "root"
    root.mkdir()
    clock = FakeClock()
    w, q = watch([root], clock=clock)
    write(root / "temp")
    eventually(lambda: len(q) == 1, "the temp file queued")
    (root / "temp").unlink()
    assert [i.path for i in q.take_ready(now=FAR)] == [str(root / "temp")]
    assert w.request_for(str(root / "temp")) is None
    assert w.stats().skipped == {"vanished": 1}


def test_symlinks_and_size_are_filtered_at_take_time(tmp_path, watch):
    """A symlink is never a request, a linked directory is not descended, and max_size applies."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    w, q = watch([root], settings=WatchSettings(max_size=10), clock=FakeClock())
    (root / "link").symlink_to(outside)
    write(outside / "secret")  # reachable only through the link: not watched
    write(root / "big", b"x" * 11)
    write(root / "small", b"x" * 10)
    write(root / "sentinel")
    eventually(lambda: str(root / "sentinel") in q, "the sentinel queued")
    paths = {i.path for i in drain(q)}
    assert not any("secret" in p for p in paths)
    requests = {p: w.request_for(p) for p in paths}
    assert requests[str(root / "big")] is None
    assert requests[str(root / "small")] is not None
    assert str(root / "link") in requests and requests[str(root / "link")] is None
    assert w.stats().skipped == {"too_large": 1, "not_regular": 1}


def test_inotify_overflow_asks_for_a_sweep(tmp_path, watch):
    """watchdog's overflow warning becomes a sweep request and a path-free event; paths stay out."""
    root = tmp_path / "root"
    root.mkdir()
    _, q = watch([root])
    with capture_logs() as logs:
        logging.getLogger("watchdog.observers.inotify").warning(
            "Inotify queue overflowed; reconciling recursive watches below %r", str(root)
        )
        logging.getLogger("watchdog.observers.inotify").warning("something else below %r", str(root))
    assert q.stats().needs_sweep
    assert [e["event"] for e in logs] == ["watch_events_lost", "watch_library_warning"]
    assert str(tmp_path) not in repr(logs)
    assert [i.kind for i in drain(q)] == [ItemKind.SWEEP]


_DENIED_SCRIPT = textwrap.dedent(
    """
    import io, json, sys, time
    from agent import logs
    from agent.sources.fs_watch import FileWatcher, WatchSettings
    from agent.sources.settle import SettleQueue, SettleSettings
    out = io.StringIO()
    logs.configure("info", "json", stream=out)
    root = sys.argv[1]
    q = SettleQueue(SettleSettings(delay=0.0))
    w = FileWatcher([root], WatchSettings(), q)
    w.start()
    open(root + "/open/after", "w").close()
    end = time.monotonic() + 60
    got = []
    while time.monotonic() < end and not got:
        got = [i.path for i in q.take_ready()]
        time.sleep(0.01)
    w.stop()
    print(json.dumps({"items": got, "stats": w.stats().roots_watched, "log": out.getvalue()}))
    """
)


@pytest.mark.skipif(
    shutil.which("setpriv") is None and os.geteuid() == 0, reason="needs setpriv to drop root's DAC override"
)
def test_permission_denied_subtree_is_logged_not_fatal(tmp_path):
    """An unreadable subdirectory is reported by count without its path, and the rest is watched."""
    root = tmp_path / "root"
    (root / "open").mkdir(parents=True)
    (root / "closed" / "inner").mkdir(parents=True)
    (root / "closed").chmod(0o000)
    script = tmp_path / "denied.py"
    script.write_text(_DENIED_SCRIPT)
    try:
        proc = subprocess.run(
            [*without_dac_override(), sys.executable, str(script), str(root)],
            capture_output=True,
            timeout=120,
            cwd=ROOT,
            check=False,
        )
    finally:
        (root / "closed").chmod(0o755)
    assert proc.returncode == 0, proc.stderr.decode()
    result = json.loads(proc.stdout)
    assert result["items"] == [str(root / "open" / "after")]
    events = [json.loads(line) for line in result["log"].splitlines()]
    denied = [e for e in events if e["event"] == "watch_subtree_denied"]
    assert denied and denied[0]["directories"] == 1 and denied[0]["root"] == 0
    assert str(tmp_path) not in result["log"]


def test_tree_beyond_the_inotify_limit_is_reported(tmp_path, watch, monkeypatch):
    """A root with more directories than the watch limit is logged by count, without paths."""
    limit = tmp_path / "max_user_watches"
    limit.write_text("2\n")
    monkeypatch.setattr(fs_watch, "_WATCH_LIMIT", str(limit))
    root = tmp_path / "root"
    for name in ("a", "b", "c"):
        (root / name).mkdir(parents=True)
    with capture_logs() as logs:
        watch([root])
    exceeded = [e for e in logs if e["event"] == "watch_limit_exceeded"]
    assert exceeded == [
        {"event": "watch_limit_exceeded", "log_level": "warning", "root": 0, "directories": 4, "limit": 2}
    ]


def test_stop_is_idempotent_and_start_twice_is_harmless(tmp_path, watch):
    """Starting twice does not double the threads; stopping twice is fine."""
    root = tmp_path / "root"
    root.mkdir()
    w, _ = watch([root])
    threads = threading.active_count()
    w.start()
    assert threading.active_count() == threads
    w.stop()
    w.stop()
    assert w.stats().roots_watched == 0
