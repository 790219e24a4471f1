"""Classification quality benchmark: file-level recall and precision of personal-data detection.

::

    python tests/benchmarks/bench_classify.py [--files N] [--seed S] [--keep DIR] [--direct] [--misses K]

Generates the labelled corpus (``pii_corpus.py``) into a temporary directory (or ``--keep DIR``), then
classifies every file. By default it runs the real command line, ``endpoint-agent scan --json DIR``, and
reads its JSON lines; ``--direct`` calls ``sniff``, ``extract_text`` and ``detect`` in this process. A
file is "found personal" when its ``personal_data`` counts are not empty. Targets (printed, not
asserted): recall >= 0.98, precision >= 0.95.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pii_corpus import generate  # noqa: E402 - the sibling module is found via sys.path

RECALL_TARGET, PRECISION_TARGET = 0.98, 0.95


def classify_direct(corpus: Path, names: list[str]) -> dict[str, dict[str, int]]:
    """Classify each file in-process: sniff, extract text, detect."""
    from agent.classify.detectors import detect
    from agent.classify.extract import TEXT_FORMATS, extract_text
    from agent.classify.kinds import HEAD_SIZE, sniff, sniff_zip
    from agent.errors import ExtractError

    results: dict[str, dict[str, int]] = {}
    for name in names:
        data = (corpus / name).read_bytes()
        ftype = sniff(data[:HEAD_SIZE], name)
        if ftype.fmt in ("zip", "ooxml"):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                ftype = sniff_zip(archive)
        text = ""
        if ftype.fmt in TEXT_FORMATS:
            try:
                text = extract_text(data, ftype.fmt)
            except ExtractError as exc:
                print(f"  extract failed: {name}: {exc}")
        results[name] = detect(text) if text else {}
    return results


def classify_cli(corpus: Path, names: list[str]) -> dict[str, dict[str, int]]:
    """Classify with ``endpoint-agent scan --json DIR`` and read its JSON lines."""
    exe = shutil.which("endpoint-agent") or str(Path(sys.executable).with_name("endpoint-agent"))
    command = (
        [exe, "scan", "--json", str(corpus)]
        if Path(exe).exists()
        else [sys.executable, "-m", "agent", "scan", "--json", str(corpus)]
    )
    proc = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if proc.returncode not in (0, 1, 2):
        print(proc.stderr[-2000:])
        raise SystemExit(f"scan exited with {proc.returncode}")
    wanted = set(names)
    results: dict[str, dict[str, int]] = {}
    for line in proc.stdout.splitlines():
        if not line.startswith("{"):
            continue
        obj = json.loads(line)
        if obj.get("summary"):
            continue
        path = Path(obj.get("path", ""))
        name = os.path.relpath(path, corpus) if path.is_absolute() else path.name
        if name in wanted:
            results[name] = obj.get("personal_data") or {}
    missing = wanted - results.keys()
    if missing:
        print(f"  {len(missing)} files missing from the scan output, e.g. {sorted(missing)[:3]}")
    return results


def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


def report(
    labels: dict[str, bool], meta: dict[str, dict], found: dict[str, dict], seconds: float, misses: int
) -> None:
    """Print recall, precision, per-format and per-locale recall, false positives and speed."""
    tp = [n for n, personal in labels.items() if personal and found.get(n)]
    fn = [n for n, personal in labels.items() if personal and not found.get(n)]
    fp = [n for n, personal in labels.items() if not personal and found.get(n)]
    recall, precision = _ratio(len(tp), len(tp) + len(fn)), _ratio(len(tp), len(tp) + len(fp))
    print(f"files: {len(labels)} ({sum(labels.values())} personal)   {len(labels) / seconds:.1f} files/s")
    print(
        f"recall    {recall:.4f}  (target >= {RECALL_TARGET})  {'ok' if recall >= RECALL_TARGET else 'BELOW'}"
    )
    print(
        f"precision {precision:.4f}  (target >= {PRECISION_TARGET})  {'ok' if precision >= PRECISION_TARGET else 'BELOW'}"
    )
    for key in ("fmt", "locale", "generator", "needle"):
        hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for name, personal in labels.items():
            if personal and meta[name].get(key):
                hits[meta[name][key]][0] += bool(found.get(name))
                hits[meta[name][key]][1] += 1
        cells = "  ".join(f"{k}={h / t:.2f}" for k, (h, t) in sorted(hits.items()))
        print(f"recall by {key}: {cells}")
    print("false positives by format:", dict(Counter(meta[n]["fmt"] for n in fp).most_common()))
    print("false positives by entity:", dict(Counter(k for n in fp for k in found[n]).most_common()))
    print("entities found in personal files:", dict(Counter(k for n in tp for k in found[n]).most_common()))
    for name in fn[:misses]:
        print(f"  missed: {name} {meta[name]}")
    for name in fp[:misses]:
        print(f"  false positive: {name} {meta[name]} {found[name]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--files", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="write the corpus here and keep it")
    parser.add_argument("--direct", action="store_true", help="classify in-process instead of via the CLI")
    parser.add_argument("--misses", type=int, default=10, help="list this many misses and false positives")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pii-corpus-") as tmp:
        corpus = args.keep or Path(tmp) / "corpus"
        labels = generate(corpus, args.files, args.seed)
        meta = json.loads((corpus / "meta.json").read_text())
        names = sorted(labels)
        start = time.perf_counter()
        found = classify_direct(corpus, names) if args.direct else classify_cli(corpus, names)
        seconds = time.perf_counter() - start
        print(
            f"mode: {'direct (sniff + extract_text + detect)' if args.direct else 'CLI (endpoint-agent scan --json)'}"
        )
        report(labels, meta, found, seconds, args.misses)


if __name__ == "__main__":
    main()
