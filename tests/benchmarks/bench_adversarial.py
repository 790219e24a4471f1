"""Benchmark the hostile corpus: peak RSS and wall time of ``endpoint-agent scan`` for each case alone.

Run on demand (not a pytest test)::

    python tests/benchmarks/bench_adversarial.py [--keep DIR] [--jobs N]

Each case of ``tests/adversarial/hostile_corpus.py`` is scanned alone, in a fresh agent home, with the
default limits; then all of them together with the ordinary control files. For each run it prints the
verdict, whether it is the expected one, the wall time, and the peak RSS (and anonymous RSS) of the
whole process tree (the CLI, its workers, the resource tracker), sampled every 50 ms as in
``bench_scan.py``. "within limits" means: the expected verdict, the wall time under the
``max_scan_time`` (+5 s grace) the pool enforces, and peak RSS at or under the 300 MB target. It never
asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent / "adversarial")]

import hostile_corpus  # noqa: E402 - after the path set-up above
from bench_scan import Run, run_agent  # noqa: E402

from agent.engine import DEFAULT_LIMITS  # noqa: E402

TARGET_RSS = 300 * 1000 * 1000  # bytes: the "300 MB"
GRACE = 5.0


def _scan(paths: list[Path], home: Path, jobs: int | None) -> tuple[Run, list[dict]]:
    lines: list[bytes] = []
    cmd = [
        sys.executable,
        "-m",
        "agent",
        "scan",
        "--json",
        *(["--jobs", str(jobs)] if jobs else []),
        *map(str, paths),
    ]
    run = run_agent(cmd, home, collect=lines)
    objects = [json.loads(x) for x in lines if x.strip() and not x.startswith(b'{"summary"')]
    return run, objects


@contextmanager
def _case_dir(keep: str | None) -> Iterator[Path]:
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        yield Path(keep)
        return
    with tempfile.TemporaryDirectory(prefix="bench-adversarial-") as tmp:
        yield Path(tmp)


def _row(label: str, run: Run, verdicts: str, expected: bool) -> tuple[str, ...]:
    in_time = run.seconds <= DEFAULT_LIMITS.max_scan_time + GRACE
    within = expected and in_time and run.peak_rss <= TARGET_RSS
    return (
        label,
        verdicts,
        "yes" if expected else "NO",
        f"{run.seconds:.2f}",
        f"{run.peak_rss / 2**20:.0f} ({run.peak_anon / 2**20:.0f})",
        "yes" if within else "NO",
    )


def _print(rows: list[tuple[str, ...]]) -> None:
    header = ("case", "verdict", "expected", "wall s", "peak RSS MiB (anon)", "within limits")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--keep", help="build the corpus in DIR and leave it there")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: one per core)")
    args = parser.parse_args()
    rows: list[tuple[str, ...]] = []
    with _case_dir(args.keep) as base:
        root, outside, homes = base / "corpus", base / "outside.com", base / "homes"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()
        cases = hostile_corpus.build(root, outside)
        hostile_corpus.build_controls(root)
        long_name = hostile_corpus.long_path(root)
        for number, case in enumerate(cases):
            growing = (
                hostile_corpus.growing(root / case.path) if case.path == "growing.log" else nullcontext()
            )
            with growing:
                run, objects = _scan([root / case.path], homes / str(number), args.jobs)
            ok = len(objects) == 1 and not case.check(objects[0])
            verdicts = ",".join(o["verdict"] for o in objects)
            rows.append(_row(repr(case.path)[1:-1][:32], run, verdicts, ok))
        run, objects = _scan([root / long_name.split("/", 1)[0]], homes / "long", args.jobs)
        rows.append(
            _row("path over 4,096 bytes", run, ",".join(o["verdict"] for o in objects), bool(objects))
        )
        with hostile_corpus.growing(root / "growing.log"):
            run, objects = _scan([root], homes / "all", args.jobs)
        by_path = {os.path.relpath(o["path"], root): o for o in objects}
        ok = all(not c.check(by_path[c.path]) for c in cases if c.path in by_path) and all(
            by_path[p]["verdict"] == v for p, v in hostile_corpus.CONTROLS.items()
        )
        rows.append(_row("ALL + controls, one run", run, f"{len(objects)} objects", ok))
    _print(rows)
    print(
        f"\ntarget: peak RSS <= {TARGET_RSS / 1e6:.0f} MB; wall time <= max_scan_time + {GRACE:.0f} s per object"
    )


if __name__ == "__main__":
    main()
