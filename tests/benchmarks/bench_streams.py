"""Stream scanning over the clamd protocol: endpoint-agent's socket against Debian's clamd.

Run on demand (not a pytest test)::

    apt-get install -y clamav-daemon        # the reference (a missing clamd is reported, not fatal)
    python tests/benchmarks/bench_streams.py [--seconds 10] [--clients 1,8,32]

Both servers get the same signatures (the bench_scan rule set: 1,000 string rules and a 10,000-entry
hash list, in YARA/.hsb and ClamAV .ndb/.hsb form) and the same objects: 64 KiB and 8 MiB, half
random binary and half ordinary text (which endpoint-agent also classifies for personal data). N
client processes send INSTREAM requests back to back for ``--seconds``; the bench prints requests/s,
p50 and p95 latency per server, the ratio, and the RSS of each server (with its workers). Target:
>= 1x clamd's requests/s for 64 KiB objects with 8 clients, and an RSS far below clamd's. It asserts
nothing.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

from _corpus import build_corpora

_CHUNK = 1 << 16


def instream(path: str, data: bytes) -> bytes:
    """One INSTREAM request over a fresh connection; returns the reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(120)
        s.connect(path)
        s.sendall(b"zINSTREAM\0")
        for i in range(0, len(data), _CHUNK):
            piece = data[i : i + _CHUNK]
            s.sendall(struct.pack(">I", len(piece)) + piece)
        s.sendall(struct.pack(">I", 0))
        reply = b""
        while not reply.endswith(b"\0") and (got := s.recv(4096)):
            reply += got
        return reply


def _client(args: tuple[str, list[bytes], float, int]) -> list[tuple[float, bool]]:
    path, objects, seconds, seed = args
    rng = random.Random(seed)
    out: list[tuple[float, bool]] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        data = rng.choice(objects)
        t = time.monotonic()
        reply = instream(path, data)
        out.append((time.monotonic() - t, reply.endswith((b"OK\x00", b"FOUND\x00"))))
    return out


def objects(size: int, count: int = 8) -> list[bytes]:
    """Half random binary, half text, ``size`` bytes each."""
    rng = random.Random(size)
    words = b"the quick brown fox jumps over a lazy dog while the report ships on monday".split()
    out = []
    for i in range(count):
        if i % 2:
            out.append(rng.randbytes(size))
        else:
            text = b" ".join(rng.choice(words) for _ in range(size // 4))
            out.append(text[:size])
    return out


def measure(path: str, objs: list[bytes], clients: int, seconds: float) -> tuple[float, float, float, int]:
    """(requests/s, p50, p95, failures) with ``clients`` client processes."""
    with multiprocessing.get_context("spawn").Pool(clients) as pool:
        started = time.monotonic()
        results = pool.map(_client, [(path, objs, seconds, i) for i in range(clients)])
        elapsed = time.monotonic() - started
    lat = sorted(t for r in results for t, _ in r)
    bad = sum(1 for r in results for _, ok in r if not ok)
    return len(lat) / max(elapsed, 1e-9), lat[len(lat) // 2], lat[int(len(lat) * 0.95)], bad


def tree_rss(pid: int) -> int:
    """RSS of a process and its children, bytes."""
    root = psutil.Process(pid)
    total = 0
    for p in (root, *root.children(recursive=True)):
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def wait_socket(path: Path, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Wait until the server answers PING."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(str(path))
                s.sendall(b"zPING\0")
                if s.recv(16) == b"PONG\0":
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("server did not come up")


def start_agent(work: Path, rules: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """endpoint-agent run with the bench rules, the clamd socket only."""
    home = work / "agent-home"
    home.mkdir()
    (home / "agent.toml").write_text(
        f'[scan]\nrules_dir = "{rules}"\n[watch]\nenabled = false\nsweep_interval = 0.0\n'
        "[programs]\nenabled = false\n[service]\nnice = 0\n"
    )
    env = {**os.environ, "ENDPOINT_AGENT_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return proc, home / "clamd.sock"


def start_clamd(work: Path, db: Path) -> tuple[subprocess.Popen[bytes], Path] | None:
    """Debian's clamd with the same signatures, if installed."""
    clamd = shutil.which("clamd") or ("/usr/sbin/clamd" if Path("/usr/sbin/clamd").exists() else None)
    if clamd is None:
        return None
    sock = work / "clamd-ref.sock"
    conf = work / "clamd.conf"
    conf.write_text(
        f"LocalSocket {sock}\nForeground yes\nDatabaseDirectory {db}\nTemporaryDirectory {work}\n"
        f"LogFile {work}/clamd.log\nStreamMaxLength 100M\nMaxThreads 10\nUser root\n"
    )
    proc = subprocess.Popen(
        [clamd, f"--config-file={conf}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return proc, sock


def main() -> None:
    """Run the bench and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", default="1,8,32")
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _, _, rules = build_corpora(work / "corpus", 50, 0, seed=7)
        servers = {"endpoint-agent": start_agent(work, rules.agent_dir)}
        ref = start_clamd(work, rules.clam_dir)
        if ref is None:
            print("clamd not installed (apt-get install clamav-daemon): reference rows left out")
        else:
            servers["clamd"] = ref
        try:
            for proc, sock in servers.values():
                wait_socket(sock, proc)
            run_table(servers, counts, args.seconds)
        finally:
            for proc, _ in servers.values():
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)


def run_table(servers: dict, counts: list[int], seconds: float) -> None:
    """Measure every server at every size and client count; print rows and ratios."""
    rows: dict[tuple[str, int, str], float] = {}
    for size, label in ((64 << 10, "64 KiB"), (8 << 20, "8 MiB")):
        objs = objects(size, 8 if size < (1 << 20) else 4)
        for clients in counts:
            if size > (1 << 20) and clients > 8:
                continue  # 32 x 8 MiB adds nothing but minutes
            for name, (proc, sock) in servers.items():
                measure(str(sock), objs, 1, 1.0)  # warm: workers started, caches filled
                rps, p50, p95, bad = measure(str(sock), objs, clients, seconds)
                rss = tree_rss(proc.pid) / (1 << 20)
                rows[(label, clients, name)] = rps
                print(
                    f"{label:7} x {clients:2} clients  {name:15} {rps:8.1f} req/s  p50 {p50 * 1000:7.1f} ms"
                    f"  p95 {p95 * 1000:7.1f} ms  failures {bad}  RSS {rss:6.0f} MiB",
                    flush=True,
                )
            if ("clamd" in servers) and rows.get((label, clients, "clamd")):
                ratio = rows[(label, clients, "endpoint-agent")] / rows[(label, clients, "clamd")]
                print(f"    ratio endpoint-agent / clamd: {ratio:.2f}x", flush=True)
    key = ("64 KiB", 8, "clamd")
    if key in rows:
        ratio = rows[("64 KiB", 8, "endpoint-agent")] / rows[key]
        print(f"target >= 1x clamd at 64 KiB x 8 clients: {ratio:.2f}x {'PASS' if ratio >= 1 else 'MISS'}")


if __name__ == "__main__":
    main()
