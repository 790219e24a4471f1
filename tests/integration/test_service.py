"""``endpoint-agent run`` as a service manager sees it: readiness, status, reload, sweep and stop."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import samples
from samples import eicar
from service_proc import ServiceProcess

from agent.config import bundled_rules_dir

pytestmark = pytest.mark.slow


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(bundled_rules_dir(), target, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return target


def _config(
    rules_dir: Path, root: Path, sweep_interval: float = 0.0, *, settle: float = 1.0, programs=False
) -> str:
    return (
        f'[scan]\nrules_dir = "{rules_dir}"\n'
        f'[watch]\nroots = ["{root}"]\nsweep_interval = {sweep_interval}\nsettle = {settle}\n'
        f"[programs]\nenabled = {str(programs).lower()}\ninterval = 0.5\n"
        "[service]\nnice = 0\ndefer_when_busy = false\n"  # a busy test machine must not starve or defer it
    )


def test_service_notifies_reports_status_and_stops_cleanly(tmp_path: Path, rules_dir: Path):
    """READY, STATUS and WATCHDOG reach the supervisor; status answers on a 0600 socket; SIGTERM exits 0."""
    root = tmp_path / "root"
    root.mkdir()
    with ServiceProcess(tmp_path / "home", _config(rules_dir, root), env={"WATCHDOG_USEC": "1000000"}) as svc:
        svc.wait_for("READY=1")
        svc.wait_for("WATCHDOG=1")
        info = svc.status()
        assert info["running"] is True
        assert info["rules_version"]
        assert {"queue_depth", "cache_entries", "outbox_depth", "rss_mb", "cpu_percent", "uptime_s"} <= set(
            info
        )
        assert stat.S_IMODE((svc.home / "control.sock").stat().st_mode) == 0o600
        started = time.monotonic()
        assert svc.stop() == 0
        assert time.monotonic() - started < 10
        assert any("STOPPING=1" in m for m in svc.messages)
        assert "service_stopped" in svc.log()
    assert not (svc.home / "control.sock").exists()


def test_sighup_keeps_old_rules_when_new_ones_break_and_swaps_good_ones(tmp_path: Path, rules_dir: Path):
    """A broken rule file is refused with a logged reason; a good change is swapped in."""
    root = tmp_path / "root"
    root.mkdir()
    with ServiceProcess(tmp_path / "home", _config(rules_dir, root)) as svc:
        svc.wait_for("READY=1")
        before = svc.status()["rules_version"]
        (rules_dir / "yara" / "broken.yar").write_text("rule Broken { condition: \n")
        svc.proc.send_signal(signal.SIGHUP)
        svc.wait_status(lambda _s: "rules_reload_failed" in svc.log())
        assert svc.status()["rules_version"] == before
        (rules_dir / "yara" / "broken.yar").write_text(
            'rule Fixed { strings: $a = "fixed-rule-42" condition: $a }'
        )
        svc.proc.send_signal(signal.SIGHUP)
        after = svc.wait_status(lambda s: s["rules_version"] != before)["rules_version"]
        assert after != before
        assert svc.stop() == 0
    failed = [e for e in svc.events() if e.get("event") == "rules_reload_failed"]
    assert "syntax error" in failed[0]["reason"]  # the file name itself is tokenized by the redactor


def test_sweep_scans_the_roots_and_reports_detections(tmp_path: Path, rules_dir: Path):
    """A due sweep walks the watched root, and its detection shows in the status per source."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "test.com").write_bytes(eicar())
    (root / "clean.txt").write_text("nothing to see\n")
    with ServiceProcess(tmp_path / "home", _config(rules_dir, root, sweep_interval=3600)) as svc:
        svc.wait_for("READY=1")
        info = svc.wait_status(lambda s: s.get("scanned", {}).get("sweep", 0) >= 2)
        assert info["detections"] == {"sweep": 1}
        assert svc.stop() == 0
    assert (svc.home / "sweep.stamp").exists()


def test_a_second_service_on_the_same_state_dir_is_refused(tmp_path: Path, rules_dir: Path):
    """Two services cannot share one state directory: the second says why and exits non-zero."""
    root = tmp_path / "root"
    root.mkdir()
    with ServiceProcess(tmp_path / "home", _config(rules_dir, root)) as first:
        first.wait_for("READY=1")
        out = subprocess.run(
            [sys.executable, "-m", "agent", "run"],
            env={**os.environ, "ENDPOINT_AGENT_HOME": str(first.home)},
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert out.returncode != 0
        assert b"already running" in out.stderr
        assert first.status()["running"] is True


def _live_config(rules_dir: Path, root: Path, programs: bool = False) -> str:
    return _config(rules_dir, root, settle=0.3, programs=programs)


def test_files_written_or_moved_into_a_watched_root_are_scanned_once_settled(tmp_path: Path, rules_dir: Path):
    """A file written in 1,000 small writes is scanned once; EICAR dropped or moved in is detected."""
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    with ServiceProcess(tmp_path / "home", _live_config(rules_dir, root)) as svc:
        svc.wait_for("READY=1")
        with (root / "notes.txt").open("w") as fh:
            for i in range(1000):
                fh.write(f"line {i}\n")
                fh.flush()
        (root / "dropped.com").write_bytes(eicar())
        (outside / "moved.com").write_bytes(eicar())
        (outside / "moved.com").rename(root / "moved.com")
        info = svc.wait_status(lambda s: s.get("detections", {}).get("on_access", 0) >= 2)
        time.sleep(1.0)  # let anything else that settles arrive before counting
        info = svc.status()
        assert info["scanned"]["on_access"] == 3  # notes.txt once, dropped.com, moved.com
        assert info["detections"]["on_access"] == 2
        assert info["on_access"]["coalesced"] > 0
        assert svc.stop() == 0


def test_new_programs_are_scanned_once_per_image(tmp_path: Path, rules_dir: Path):
    """A new executable image is noticed by the poller and scanned once, however many processes run it."""
    marker = f"sleeper-marker-{os.getpid()}-{time.monotonic_ns()}"
    (rules_dir / "yara" / "marker.yar").write_text(
        f'rule Test_Sleeper_Marker {{ strings: $a = "{marker}" condition: $a }}'
    )
    root = tmp_path / "root"
    root.mkdir()
    image = tmp_path / "sleeper"
    image.write_bytes(Path("/bin/sleep").read_bytes() + marker.encode())  # still runs: ELF ignores the tail
    image.chmod(0o755)
    with ServiceProcess(tmp_path / "home", _live_config(rules_dir, root, programs=True)) as svc:
        svc.wait_for("READY=1")
        procs = [subprocess.Popen([str(image), "30"]) for _ in range(2)]
        try:
            svc.wait_status(lambda s: s["detections"].get("program", 0) >= 1)
            time.sleep(2.0)  # several more polls: the second process must not add a scan
            assert svc.status()["detections"]["program"] == 1  # two processes, one image, one scan
        finally:
            for p in procs:
                p.kill()
                p.wait()
        assert svc.stop() == 0


def test_the_service_answers_real_clamd_clients(tmp_path: Path, rules_dir: Path):
    """The clamd PyPI client and Debian's clamdscan scan through the running service's socket."""
    import io

    import clamd

    root = tmp_path / "root"
    root.mkdir()
    with ServiceProcess(tmp_path / "home", _config(rules_dir, root)) as svc:
        svc.wait_for("READY=1")
        sock = svc.home / "clamd.sock"
        assert stat.S_IMODE(sock.stat().st_mode) == 0o660
        client = clamd.ClamdUnixSocket(path=str(sock))
        assert client.ping() == "PONG"
        assert client.version().startswith("endpoint-agent ")
        assert client.instream(io.BytesIO(eicar()))["stream"][0] == "FOUND"
        assert client.instream(io.BytesIO(b"hello\n" * 1000))["stream"] == ("OK", None)
        document = samples.docm(samples.ole_vba("AutoOpen"))  # an Office document: personal by policy
        assert client.instream(io.BytesIO(document))["stream"][0] == "FOUND"
        target = tmp_path / "x.com"
        target.write_bytes(eicar())
        clamdscan = shutil.which("clamdscan")
        if clamdscan is not None:
            conf = tmp_path / "clamd.conf"
            conf.write_text(f"LocalSocket {sock}\n")
            out = subprocess.run(
                [clamdscan, f"--config-file={conf}", "--stream", "--no-summary", str(target)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert out.returncode == 1, out.stdout + out.stderr
            assert out.stdout.strip().endswith("FOUND")
        info = svc.wait_status(lambda s: s.get("outbox_depth", 0) >= 2)
        assert info["detections"]["stream"] == (3 if clamdscan else 2)
        assert svc.stop() == 0
    with sqlite3.connect(svc.home / "agent.db") as db:
        records = [json.loads(body) for (body,) in db.execute("SELECT body FROM outbox")]
    by_kind = {r["kind"]: r for r in records}
    assert by_kind["document"].get("sha256") is None  # a personal stream leaves no hash upstream
    assert by_kind["text"]["sha256"] == hashlib.sha256(eicar()).hexdigest()
