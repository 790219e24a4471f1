"""Idle footprint of the service: CPU and memory while watching a large, unchanging home.

Run on demand (not a pytest test)::

    python tests/benchmarks/bench_idle.py [--files 50000] [--seconds 60]

It generates a home of ``--files`` small files in nested directories, starts ``endpoint-agent run``
with the default configuration watching it (programs monitor and clamd socket included), waits
until the first sweep has finished (it fills the verdict cache), and then measures the service and
its workers for ``--seconds`` with nothing changing (after ``--settle`` seconds, in which idle workers
retire): average CPU (% of one core) and total RSS.
Targets: CPU < 1 % of a core, RSS < 150 MB. It also times a second sweep of the unchanged home
(answered from the cache). Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil


def make_home(root: Path, files: int) -> None:
    """``files`` files of 1-4 KiB, 100 per directory, three levels deep."""
    for n in range(files):
        d = root / f"d{n // 10000}" / f"e{(n // 100) % 100}"
        if n % 100 == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"f{n}.txt").write_bytes(b"line of ordinary text %d\n" % n * (40 + n % 120))


def status(home: Path) -> dict:
    """``endpoint-agent status --json``."""
    out = subprocess.run(
        [sys.executable, "-m", "agent", "status", "--json"],
        capture_output=True,
        env={**os.environ, "ENDPOINT_AGENT_HOME": str(home)},
        check=False,
    )
    try:
        return json.loads(out.stdout)
    except ValueError:  # the service is starting (or stopping): no answer yet
        return {}


def tree(pid: int) -> list[psutil.Process]:
    """The service and its children."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def cpu_seconds(pid: int) -> float:
    """CPU seconds of the service: its own, its reaped children's, and its live children's."""
    root = psutil.Process(pid)
    t = root.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for p in root.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            c = p.cpu_times()
            total += c.user + c.system
    return total


def rss(procs: list[psutil.Process]) -> int:
    """Summed RSS in bytes."""
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def wait_sweep(home: Path, count: int, timeout: float = 1800) -> float:
    """Wait until ``count`` sweeps finished and the queue is empty; return the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        info = status(home)
        if info.get("sweep", {}).get("sweeps", 0) >= count and info.get("queue_depth", 1) == 0:
            return time.monotonic() - started
        time.sleep(0.5)
    raise SystemExit("the sweep did not finish")


def main() -> None:
    """Run the bench."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=65.0, help="seconds to wait after the sweep")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home, root = Path(tmp) / "agent-home", Path(tmp) / "home"
        home.mkdir()
        make_home(root, args.files)
        (home / "agent.toml").write_text(f'[watch]\nroots = ["{root}"]\nsweep_interval = 86400.0\n')
        env = {**os.environ, "ENDPOINT_AGENT_HOME": str(home)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(2.0)  # let the service start before measuring the sweep
            sweep_cpu0 = cpu_seconds(proc.pid)
            first = wait_sweep(home, 1)
            sweep_share = (cpu_seconds(proc.pid) - sweep_cpu0) / max(first, 1e-9) * 100
            time.sleep(args.settle)  # idle workers retire after service.worker_idle_retire (60 s)
            used, t0 = cpu_seconds(proc.pid), time.monotonic()
            peak = 0
            while time.monotonic() - t0 < args.seconds:
                time.sleep(1.0)
                procs = tree(proc.pid)
                peak = max(peak, rss(procs))
            cpu = (cpu_seconds(proc.pid) - used) / (time.monotonic() - t0) * 100
            second = _second_sweep(home, env)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    print(
        f"home of {args.files:,} files; first sweep (cold cache) {first:.1f} s, "
        f"averaging {sweep_share:.0f} % of one core (budget 25 %)"
    )
    print(
        f"idle {args.seconds:.0f} s: CPU {cpu:.2f} % of one core (target < 1 %), "
        f"RSS {peak / (1 << 20):.0f} MiB over {len(procs)} processes (target < 150 MB)"
    )
    print(f"second sweep of the unchanged home (verdict cache): {second:.1f} s")
    ok = cpu < 1.0 and peak < 150e6
    print(f"targets: {'PASS' if ok else 'MISS'}")


def _second_sweep(home: Path, env: dict[str, str]) -> float:
    """Ask the service for a sweep (``endpoint-agent sweep``) and time it."""
    before = status(home).get("sweep", {}).get("sweeps", 0)
    subprocess.run([sys.executable, "-m", "agent", "sweep"], env=env, check=True, capture_output=True)
    return wait_sweep(home, before + 1)


if __name__ == "__main__":
    main()
