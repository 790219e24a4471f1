"""A signed rule update swapped into a running service under load: no scan fails, new rules apply."""

from __future__ import annotations

import shutil
import signal
import socket
import struct
import threading
import time
from pathlib import Path

import pytest
from conftest import run_cli
from samples import eicar
from service_proc import ServiceProcess

from agent.config import bundled_rules_dir
from agent.updates import build, generate_key, public_key_b64

pytestmark = pytest.mark.slow


def _instream(path: Path, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(60)
        s.connect(str(path))
        s.sendall(b"zINSTREAM\0" + struct.pack(">I", len(data)) + data + struct.pack(">I", 0))
        reply = b""
        while not reply.endswith(b"\0") and (got := s.recv(4096)):
            reply += got
        return reply


def test_update_and_reload_under_load_fail_no_scan(tmp_path: Path):
    """Streams keep flowing through `rules update` and SIGHUP; each gets OK or FOUND; then the new rule fires."""
    key = tmp_path / "vendor.key"
    pinned = public_key_b64(generate_key(key))
    src = tmp_path / "src"
    shutil.copytree(bundled_rules_dir(), src, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (src / "yara" / "fresh.yar").write_text(
        'rule Fresh_Update_Marker { strings: $a = "fresh-update-77" condition: $a }'
    )
    bundle = tmp_path / "rules.tar.gz"
    build(src, key, bundle, version=2)
    home = tmp_path / "home"
    config = (
        f'[updates]\npinned_keys = ["{pinned}"]\n[watch]\nenabled = false\nsweep_interval = 0.0\n'
        "[programs]\nenabled = false\n[service]\nnice = 0\n"
    )
    replies: list[bytes] = []
    stop = threading.Event()
    with ServiceProcess(home, config) as svc:
        svc.wait_for("READY=1")
        sock = home / "clamd.sock"

        def load() -> None:
            n = 0
            while not stop.is_set():
                replies.append(_instream(sock, eicar() if n % 5 == 0 else b"clean %d" % n))
                n += 1

        worker = threading.Thread(target=load)
        worker.start()
        try:
            time.sleep(1.0)
            updated = run_cli("rules", "update", str(bundle), home=home)
            assert updated.returncode == 0, updated.stderr
            before = svc.status()["rules_version"]
            svc.proc.send_signal(signal.SIGHUP)
            svc.wait_status(lambda s: s["rules_version"] != before)
            time.sleep(1.0)
        finally:
            stop.set()
            worker.join(60)
        assert _instream(sock, b"fresh-update-77").endswith(b"Fresh_Update_Marker FOUND\0")
        assert svc.stop() == 0
    assert len(replies) > 20
    assert all(r.endswith((b": OK\0", b" FOUND\0")) for r in replies), [r for r in replies if b"ERROR" in r][
        :3
    ]
    rolled = run_cli("rules", "rollback", home=home)
    assert rolled.returncode == 0, rolled.stderr
