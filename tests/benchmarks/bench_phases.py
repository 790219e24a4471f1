"""Where a scan worker's time goes: the pipeline's phases over the small-file corpus, in one process.

Run on demand (not a pytest test)::

    python tests/benchmarks/bench_phases.py [--keep DIR] [--small N]

It runs the real worker handler (``agent.pipeline.setup``) over the corpus of ``bench_scan.py`` (same
generator, same 1,000 rules and 10,000 hashes; ``--keep`` reuses a corpus ``bench_scan.py --keep``
left) in this one process, and times each phase by wrapping the function that does it: opening,
reading, YARA-X, hash lists, file-type sniffing, text extraction, personal-data detection, verdict
and minimization. What is left ("the rest") is SHA-256, archive members and bookkeeping. As a floor
it also times the bare loop the issue names: read, SHA-256 and one YARA-X scan per file.

It prints seconds per phase, their share and microseconds per file, and asserts nothing. Times are
wall clock in one process, after an untimed read of the corpus (warm page cache), so they are CPU
time when the machine is otherwise idle.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scan import _corpora

# (module, class or "", function, phase): each is wrapped with a timer. Nested phases are not
# subtracted, so none of these may call another.
_PHASES = (
    ("agent.pipeline", "", "open_regular", "open, stat, close"),
    ("agent.engine.scanner", "", "_read_exactly", "read"),
    ("agent.engine.scanner", "Engine", "_rule_hits", "YARA-X"),
    ("agent.engine.scanner", "Engine", "_hash_hits", "hash lists"),
    ("agent.classify.classifier", "", "_sniff", "file type"),
    ("agent.classify.classifier", "", "extract_text", "text extraction"),
    ("agent.classify.classifier", "", "detect", "personal-data detection"),
    ("agent.pipeline", "", "decide", "verdict"),
    ("agent.pipeline", "", "minimize", "minimization"),
)


def _timed(fn: Callable[..., Any], phase: str, spent: dict[str, float]) -> Callable[..., Any]:
    if phase == "open, stat, close":  # a context manager: time entering and leaving it

        class _Opened:
            def __init__(self, *args: Any) -> None:
                self._cm = fn(*args)

            def __enter__(self) -> Any:
                started = time.perf_counter()
                try:
                    return self._cm.__enter__()
                finally:
                    spent[phase] += time.perf_counter() - started

            def __exit__(self, *exc: object) -> Any:
                started = time.perf_counter()
                try:
                    return self._cm.__exit__(*exc)
                finally:
                    spent[phase] += time.perf_counter() - started

        return _Opened

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[phase] += time.perf_counter() - started

    return wrapper


def phases(root: Path, rules_dir: Path) -> tuple[int, float, dict[str, float]]:
    """Run the worker handler over every file under ``root``; return (files, seconds, per phase)."""
    from agent import config
    from agent.model import ScanRequest
    from agent.session import ScanSession, SessionOptions

    session = ScanSession(config.load(), SessionOptions(rules_dir=rules_dir, use_cache=False))
    from agent import pipeline

    spent: dict[str, float] = defaultdict(float)
    for module, cls, name, phase in _PHASES:
        owner = importlib.import_module(module)
        owner = getattr(owner, cls) if cls else owner
        setattr(owner, name, _timed(getattr(owner, name), phase, spent))
    handle = pipeline.setup(session._ctx)
    paths = sorted(str(p) for p in root.rglob("*") if p.is_file())
    started = time.perf_counter()
    for path in paths:
        handle(ScanRequest(path=path))
    return len(paths), time.perf_counter() - started, dict(spent)


def bare_loop(root: Path, rules_dir: Path) -> float:
    """Seconds for read + SHA-256 + one YARA-X scan per file, the same rules, in this process."""
    from agent.engine import load_rules

    scanner = load_rules(rules_dir).scanner()
    paths = sorted(p for p in root.rglob("*") if p.is_file())
    started = time.perf_counter()
    for path in paths:
        data = path.read_bytes()
        hashlib.sha256(data).hexdigest()
        scanner.scan(data)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--keep", type=Path, metavar="DIR", help="corpus directory (as bench_scan.py --keep)")
    parser.add_argument("--small", type=int, default=20_000, metavar="N", help="small files (1-64 KiB)")
    parser.add_argument(
        "--large", type=int, default=40, metavar="N", help="large files (only to reuse a kept corpus)"
    )
    parser.add_argument("--seed", type=int, default=20240601, help="corpus seed")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-phases-") as tmp:
        os.environ["ENDPOINT_AGENT_HOME"] = str(Path(tmp) / "home")
        out = args.keep.resolve() if args.keep else Path(tmp) / "corpus"
        small, _large, rules = _corpora(out, args.small, args.large, args.seed)
        for path in small.root.rglob("*"):  # an untimed read first: both loops start from a warm page cache
            if path.is_file():
                path.read_bytes()
        floor = bare_loop(small.root, rules.agent_dir)
        files, total, spent = phases(small.root, rules.agent_dir)
    rest = total - sum(spent.values())
    print(f"{files} files, {small.bytes / 2**20:.0f} MiB, one process; pipeline {total:.2f} s")
    print(f"{'phase':<28} {'seconds':>8} {'share':>7} {'µs/file':>9}")
    for phase, seconds in [
        *sorted(spent.items(), key=lambda kv: -kv[1]),
        ("the rest (SHA-256, archives, bookkeeping)", rest),
    ]:
        print(f"{phase[:42]:<28} {seconds:8.2f} {seconds / total:7.1%} {seconds / files * 1e6:9.0f}")
    detect = spent.get("personal-data detection", 0.0)
    print()
    print(f"bare loop (read + SHA-256 + YARA-X): {floor:.2f} s, {floor / files * 1e6:.0f} µs/file")
    print(
        f"pipeline without detection: {total - detect:.2f} s ({(total - detect) / floor:.1f} times the bare loop)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
