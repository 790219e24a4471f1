"""On-access latency: a writer creates files at a steady rate; how long from close to verdict?

Run on demand (not a pytest test)::

    python tests/benchmarks/bench_on_access.py [--rate 100] [--seconds 60] [--eicar-every 10]

The real service parts run in this process: the dispatcher (worker pool, cache, outbox) and the
on-access source (watchdog, settle queue, consumer), with the default settle delay. A separate
writer process creates ``rate`` files per second for ``seconds`` (every N-th one EICAR, assembled at
run time) and records the moment each file was closed; the bench records the moment each verdict
arrived (CLOCK_MONOTONIC is shared by processes). It prints p50/p95/p99 of close-to-verdict, how many
files were written and how many got a verdict (target: all of them, p95 <= 1 s), and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

_WRITER = r"""
import json, os, sys, time
root, rate, seconds, every = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
parts = ("X5O!P%@AP[4\\PZX54(P^)7CC)7}$", "EICAR-STANDARD-ANTIVIRUS-", "TEST-FILE!$H+H*")
eicar = "".join(parts).encode()
closed = {}
start = time.monotonic()
n = 0
while time.monotonic() - start < seconds:
    due = start + n / rate
    if due > time.monotonic():
        time.sleep(due - time.monotonic())
    path = os.path.join(root, f"f{n:06d}.{'com' if n % every == 0 else 'txt'}")
    with open(path, "wb") as fh:
        fh.write(eicar if n % every == 0 else b"clean file %d\n" % n * 50)
    closed[path] = time.monotonic()
    n += 1
json.dump(closed, sys.stdout)
"""


def main() -> None:
    """Run the bench and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--eicar-every", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home, root = Path(tmp) / "home", Path(tmp) / "root"
        root.mkdir()
        os.environ["ENDPOINT_AGENT_HOME"] = str(home)
        run(root, args)


def run(root: Path, args: argparse.Namespace) -> None:
    """Start dispatcher + on-access source, run the writer, collect the verdict times."""
    from agent import config
    from agent.dispatch import Dispatcher
    from agent.engine import load_rules
    from agent.model import Outcome, ScanRequest
    from agent.sources.fs_watch import WatchSettings
    from agent.sources.on_access import OnAccess
    from agent.sources.settle import SettleSettings

    cfg = config.load()
    dispatcher = Dispatcher(cfg, load_rules(cfg.rules_dir))
    dispatcher.start()
    verdicts: dict[str, tuple[float, str]] = {}
    lock = threading.Lock()

    def submit(request: ScanRequest) -> Future[Outcome]:
        future = dispatcher.submit(request)

        def done(f: Future[Outcome]) -> None:
            with lock:
                verdicts.setdefault(request.path, (time.monotonic(), f.result().verdict.kind.value))

        future.add_done_callback(done)
        return future

    settle = SettleSettings(delay=cfg.watch.settle, max_delay=30.0, max_paths=cfg.watch.queue_max)
    source = OnAccess(
        (str(root),),
        WatchSettings(),
        settle,
        (str(cfg.state_dir),),
        submit=submit,
        request_sweep=lambda: None,
    )
    source.start()
    time.sleep(1.0)  # the workers start on the first item; warm them like a running service would be
    cmd = [sys.executable, "-c", _WRITER, str(root), str(args.rate), str(args.seconds), str(args.eicar_every)]
    out = subprocess.run(cmd, capture_output=True, check=True, text=True)
    closed: dict[str, float] = json.loads(out.stdout)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(verdicts) < len(closed):
        time.sleep(0.1)
    source.stop()
    dispatcher.stop(10.0)
    report(closed, verdicts, cfg.watch.settle, source.status())


def report(
    closed: dict[str, float], verdicts: dict[str, tuple[float, str]], settle: float, status: dict
) -> None:
    """Print the latency percentiles and the loss count."""
    latencies = sorted(verdicts[p][0] - t for p, t in closed.items() if p in verdicts)
    found = sum(1 for p in closed if p in verdicts and verdicts[p][1] == "malicious")
    planted = sum(1 for p in closed if p.endswith(".com"))

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")

    print(
        f"settle delay {settle} s; files written {len(closed)}, verdicts {len(latencies)}, "
        f"lost {len(closed) - len(latencies)}; EICAR found {found}/{planted}"
    )
    print(
        f"close -> verdict: p50 {pct(0.50):.3f} s, p95 {pct(0.95):.3f} s, p99 {pct(0.99):.3f} s, "
        f"max {latencies[-1] if latencies else float('nan'):.3f} s, mean {statistics.fmean(latencies or [0]):.3f} s"
    )
    target = "PASS" if latencies and pct(0.95) <= 1.0 and len(latencies) == len(closed) else "MISS"
    print(f"target p95 <= 1 s and no file lost: {target}")
    print(f"settle queue: {status}")


if __name__ == "__main__":
    main()
