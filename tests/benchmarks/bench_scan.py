"""Benchmark ``endpoint-agent scan`` against sha256sum, classic yara and clamscan on one machine.

Run on demand (not a pytest test)::

    python tests/benchmarks/bench_scan.py [--small N] [--large N] [--keep DIR] [--skip-clamscan]

It generates a deterministic corpus (see ``_corpus.py``) and the same signatures for all three
scanners, then times every command ``--repeat`` times (interleaved, so machine noise hits all tools
alike; each run after an untimed read of the whole corpus, so it starts from a warm page cache) and
prints medians, ratios against the targets, and PASS/MISS. It never asserts: the numbers are for
people to read.

Peak memory is the summed RSS (also its anonymous part, and PSS, which counts a page shared by
several processes, such as the interpreter and YARA-X's code, once in all) of the endpoint-agent
process tree, sampled every 50 ms. The agent runs without ``PYTHONDONTWRITEBYTECODE``, so an
editable install caches its bytecode as ``pip install .`` does at install time. The reference tools come from Debian: ``apt-get install -y yara clamav``; a missing
tool is reported and its rows are left out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _corpus import MIB, Corpus, RuleSets, build_corpora

_RSS_INTERVAL = 0.05
_MANIFEST = "bench-manifest.json"


@dataclass(slots=True)
class Run:
    """One measured command."""

    seconds: float
    rc: int
    to_summary: float | None = None  # seconds from start to the summary line (endpoint-agent)
    summary: dict[str, Any] | None = None
    peak_rss: int = 0  # bytes, whole process tree (endpoint-agent)
    peak_anon: int = 0  # bytes, anonymous part of the same (not counting mapped input files)
    peak_pss: int = 0  # bytes, proportional set size of the same (shared pages counted once overall)
    flagged: int | None = None  # files the tool reported (yara, clamscan)
    stderr_tail: str = ""
    cpu: float = 0.0  # CPU seconds (user + system) of the process and every child it waited for
    cpu_parent: float = 0.0  # of those, the process itself (its last sample, up to 50 ms early)


@dataclass(slots=True)
class Series:
    """Repeated runs of one command on one corpus."""

    label: str
    runs: list[Run] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    def median_run(self) -> Run:
        """The run whose time is the median (lower median for an even count)."""
        ordered = sorted(self.runs, key=lambda r: r.seconds)
        return ordered[(len(ordered) - 1) // 2]


# ---------------------------------------------------------------- measuring


class _TreeSampler(threading.Thread):
    """Samples the summed RSS (and anonymous RSS) of a process and all its descendants every 50 ms.

    RSS counts the pages of memory-mapped input files too (page cache, reclaimable); ``RssAnon`` from
    ``/proc/PID/status`` is the memory the processes allocated themselves.
    """

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self._root = psutil.Process(pid)
        self._halt = threading.Event()
        self.peak_rss = 0
        self.peak_anon = 0
        self.peak_pss = 0
        self.cpu_root = 0.0

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                procs = [self._root, *self._root.children(recursive=True)]
            except psutil.Error:
                return
            with contextlib.suppress(psutil.Error):
                times = self._root.cpu_times()
                self.cpu_root = times.user + times.system
            rss = anon = pss = 0
            for proc in procs:
                r, a, p = _memory(proc)
                rss += r
                anon += a
                pss += p
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_anon = max(self.peak_anon, anon)
            self.peak_pss = max(self.peak_pss, pss)
            self._halt.wait(_RSS_INTERVAL)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def _memory(proc: psutil.Process) -> tuple[int, int, int]:
    """(RSS, anonymous RSS, PSS) of one process in bytes; zeros once it is gone."""
    try:
        with open(f"/proc/{proc.pid}/status", "rb") as fh:
            fields = dict(line.split(b":", 1) for line in fh if line.startswith((b"VmRSS", b"RssAnon")))
        rss, anon = int(fields[b"VmRSS"].split()[0]) * 1024, int(fields[b"RssAnon"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        try:
            return proc.memory_info().rss, 0, 0
        except psutil.Error:
            return 0, 0, 0
    try:
        with open(f"/proc/{proc.pid}/smaps_rollup", "rb") as fh:
            pss = next((int(line.split()[1]) * 1024 for line in fh if line.startswith(b"Pss:")), 0)
    except (OSError, ValueError):
        pss = 0
    return rss, anon, pss


def run_agent(cmd: list[str], home: Path, collect: list[bytes] | None = None) -> Run:
    """Run endpoint-agent with ``$ENDPOINT_AGENT_HOME=home``; stdout is read and dropped (or collected)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["ENDPOINT_AGENT_HOME"] = str(home)
    with tempfile.TemporaryFile() as err:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env)
        sampler = _TreeSampler(proc.pid)
        sampler.start()
        got: dict[str, Any] = {}
        assert proc.stdout is not None
        reader = threading.Thread(
            target=_read_summary, args=(proc.stdout, started, got, collect), daemon=True
        )
        reader.start()
        rc = proc.wait()
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the workers count: the agent waits for them
        reader.join()
        sampler.stop()
        err.seek(0)
        tail = err.read()[-2000:].decode(errors="replace")
    return Run(
        seconds=seconds,
        rc=rc,
        to_summary=got.get("at"),
        summary=got.get("summary"),
        peak_rss=sampler.peak_rss,
        peak_anon=sampler.peak_anon,
        peak_pss=sampler.peak_pss,
        stderr_tail=tail,
        cpu=after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
        cpu_parent=sampler.cpu_root,
    )


def _read_summary(
    stream: IO[bytes], started: float, got: dict[str, Any], collect: list[bytes] | None
) -> None:
    for line in stream:
        if collect is not None:
            collect.append(line)
        if line.startswith(b'{"summary"'):
            got["at"] = time.perf_counter() - started
            got["summary"] = json.loads(line)


def run_plain(cmd: list[str], count: str | None = None) -> Run:
    """Run a reference tool; ``count`` = 'yara' or 'clamscan' counts the files it flagged."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        rc = subprocess.run(
            cmd, stdout=out if count else subprocess.DEVNULL, stderr=err, check=False
        ).returncode
        seconds = time.perf_counter() - started
        flagged = None
        if count:
            out.seek(0)
            flagged = _count_flagged(out.read().decode(errors="replace"), count)
        err.seek(0)
        tail = err.read()[-2000:].decode(errors="replace")
    return Run(seconds=seconds, rc=rc, flagged=flagged, stderr_tail=tail)


def _count_flagged(text: str, tool: str) -> int:
    files = set()
    for line in text.splitlines():
        if tool == "clamscan" and line.endswith(" FOUND"):
            files.add(line.rsplit(": ", 1)[0])
        elif tool == "yara" and " " in line:
            files.add(line.split(" ", 1)[1])
    return len(files)


def _sh(pipeline: str) -> list[str]:
    return ["bash", "-c", f"set -o pipefail; {pipeline}"]


# ---------------------------------------------------------------- the benchmark


@dataclass(slots=True)
class Tools:
    agent: list[str]
    yara: str | None
    clamscan: str | None


def _tools(skip_clamscan: bool) -> Tools:
    venv_bin = Path(sys.executable).parent
    agent_exe = shutil.which("endpoint-agent", path=str(venv_bin)) or shutil.which("endpoint-agent")
    agent = [agent_exe] if agent_exe else [sys.executable, "-m", "agent"]
    clamscan = None if skip_clamscan else shutil.which("clamscan")
    return Tools(agent=agent, yara=shutil.which("yara"), clamscan=clamscan)


def _commands(tools: Tools, rules: RuleSets, corpus: Corpus, jobs: int | None) -> dict[str, list[str]]:
    root = str(corpus.root)
    jobs_arg = ["--jobs", str(jobs)] if jobs else []
    cmds = {
        "agent": [*tools.agent, "scan", "--json", *jobs_arg, "--rules", str(rules.agent_dir), root],
        "sha256sum": _sh(f"find {shlex.quote(root)} -type f -print0 | xargs -0 sha256sum > /dev/null"),
    }
    if tools.yara:
        cmds["yara"] = [tools.yara, "-r", "-p", "2", str(rules.yara_file), root]
    if tools.clamscan:
        cmds["clamscan"] = [tools.clamscan, "-r", "--no-summary", "-d", str(rules.clam_dir), root]
    return cmds


def bench_corpus(
    corpus: Corpus, rules: RuleSets, tools: Tools, work: Path, repeat: int, jobs: int | None
) -> tuple[dict[str, Series], dict[str, Counter[str]]]:
    """Time every command ``repeat`` times on ``corpus``.

    Returns the series by key, and per-category counts from one more (untimed) warm-cache run.
    """
    cmds = _commands(tools, rules, corpus, jobs)
    agent = cmds["agent"]
    no_cache = [*agent[:3], "--no-cache", *agent[3:]]
    series = {
        k: Series(k) for k in ("agent_nocache", "agent_cold", "agent_warm", "sha256sum", "yara", "clamscan")
    }
    read_all = _sh(f"find {shlex.quote(str(corpus.root))} -type f -print0 | xargs -0 cat > /dev/null")
    _say(
        f"[{corpus.name}] warm-up: one untimed run of each tool on one dir; the corpus is read before each run"
    )

    def rewarm() -> None:
        # Pages of a large corpus can be evicted between runs (memory pressure from other work on a
        # shared machine): read everything again, untimed, so each run starts from a warm page cache.
        subprocess.run(read_all, check=True)

    rewarm()
    _warm_tools(cmds, corpus, work)
    home = work
    for rep in range(1, repeat + 1):
        rewarm()
        _note(series["agent_nocache"], run_agent(no_cache, work / f"home-{corpus.name}-{rep}-nocache"), rep)
        home = work / f"home-{corpus.name}-{rep}-cache"
        rewarm()
        _note(series["agent_cold"], run_agent(agent, home), rep)
        rewarm()
        _note(series["agent_warm"], run_agent(agent, home), rep)
        rewarm()
        _note(series["sha256sum"], run_plain(cmds["sha256sum"]), rep)
        if "yara" in cmds:
            rewarm()
            _note(series["yara"], run_plain(cmds["yara"], count="yara"), rep)
        if "clamscan" in cmds:
            rewarm()
            _note(series["clamscan"], run_plain(cmds["clamscan"], count="clamscan"), rep)
    lines: list[bytes] = []
    run_agent(agent, home, collect=lines)  # untimed, from the cache: what each file was judged to be
    return {k: s for k, s in series.items() if s.runs}, _by_category(corpus, lines)


def _by_category(corpus: Corpus, lines: list[bytes]) -> dict[str, Counter[str]]:
    """Per generated category: files, files with personal-data findings, personal data class, flagged."""
    stats: dict[str, Counter[str]] = {}
    prefix = str(corpus.root) + os.sep
    for line in lines:
        obj = json.loads(line)
        if obj.get("summary"):
            continue
        rel = obj["path"].removeprefix(prefix)
        counts = stats.setdefault(corpus.category_of.get(rel, "?"), Counter())
        counts["files"] += 1
        counts["findings"] += bool(obj.get("personal_data"))
        counts["personal"] += obj.get("data_class") == "personal"
        counts["flagged"] += obj.get("verdict") in ("malicious", "suspicious")
    return stats


def _warm_tools(cmds: dict[str, list[str]], corpus: Corpus, work: Path) -> None:
    """One untimed run of each tool on a small sub-tree, so binaries and Python modules are cached."""
    sub = next((p for p in sorted(corpus.root.iterdir()) if p.is_dir()), corpus.root)
    root = str(corpus.root)
    for key, cmd in cmds.items():
        warm = [str(sub) if part == root else part.replace(root, str(sub)) for part in cmd]
        env_home = work / f"home-warmup-{corpus.name}"
        if key == "agent":
            run_agent(warm, env_home)
        else:
            run_plain(warm)


def _note(series: Series, run: Run, rep: int) -> None:
    series.runs.append(run)
    extra = ""
    if run.summary is not None:
        extra = f" summary at {run.to_summary:.2f}s files={run.summary.get('files')} cached={run.summary.get('cached')}"
    if run.peak_rss:
        extra += f" peak_rss={run.peak_rss / MIB:.0f}MiB"
    if run.cpu:
        extra += f" cpu={run.cpu:.1f}s (parent {run.cpu_parent:.1f}s)"
    _say(f"  {series.label:<14} rep {rep}: {run.seconds:8.2f}s rc={run.rc}{extra}")
    if run.rc not in (0, 1):
        _say("    stderr: " + run.stderr_tail.strip().replace("\n", "\n            ")[-800:])


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- report

_LABELS = {
    "agent_nocache": "endpoint-agent --no-cache",
    "agent_cold": "endpoint-agent (cold cache)",
    "agent_warm": "endpoint-agent (warm cache)",
    "sha256sum": "sha256sum",
    "yara": "yara -r -p 2",
    "clamscan": "clamscan",
}


def report(
    corpora: list[Corpus], results: dict[str, dict[str, Series]], rules: RuleSets, jobs: int | None
) -> str:
    """The printed table: per tool and corpus, then the target checks."""
    lines: list[str] = []
    add = lines.append
    add(
        f"endpoint-agent scan benchmark — {os.cpu_count()} cores, jobs={jobs or 'default'}, "
        f"{rules.yara_rules} YARA rules, {rules.hash_entries} hash entries, "
        f"medians of {max(len(s.runs) for r in results.values() for s in r.values())} runs"
    )
    for corpus in corpora:
        cats = ", ".join(f"{k} {v}" for k, v in sorted(corpus.by_category.items()))
        add(f"corpus {corpus.name}: {corpus.files} files, {corpus.bytes / MIB:.1f} MiB ({cats}); "
            f"{len(corpus.planted)} files planted to be flagged")  # fmt: skip
    add("")
    header = f"{'corpus':<6} {'tool':<28} {'seconds':>8} {'(min-max)':>15} {'files/s':>9} {'MiB/s':>8}  notes"
    add(header)
    add("-" * len(header))
    for corpus in corpora:
        for key, s in results[corpus.name].items():
            med = s.median
            lo, hi = min(r.seconds for r in s.runs), max(r.seconds for r in s.runs)
            add(
                f"{corpus.name:<6} {_LABELS[key]:<28} {med:8.2f} {f'({lo:.2f}-{hi:.2f})':>15} "
                f"{corpus.files / med:9.1f} {corpus.bytes / MIB / med:8.1f}  {_notes(s, corpus)}"
            )
    add(
        "flagged = files the tool reported / files planted (EICAR, rule strings, hash-list entries, 2 zips "
        "with a planted member);\n  classic yara sees neither hash lists nor zip members, so it flags fewer."
    )
    add("")
    add("endpoint-agent --no-cache, the median run's own summary line:")
    for corpus in corpora:
        run = results[corpus.name]["agent_nocache"].median_run()
        summ = run.summary or {}
        keys = ("files", "detections", "seconds", "files_per_second", "mib_per_second", "personal_files")
        own = ", ".join(f"{k}={summ.get(k)}" for k in keys)
        to_sum = f"{run.to_summary:.2f}s" if run.to_summary is not None else "n/a"
        add(f"  {corpus.name:<6} process {run.seconds:.2f}s, summary line at {to_sum}; summary: {own}")
        add(f"         verdicts={summ.get('verdicts')} kinds={summ.get('kinds')}")
    add("")
    add(_targets(corpora, results))
    return "\n".join(line.rstrip() for line in lines)


def category_report(corpora: list[Corpus], categories: dict[str, dict[str, Counter[str]]]) -> str:
    """How endpoint-agent judged each generated category (from a warm-cache run; not timed)."""
    lines = [
        (
            "endpoint-agent verdicts by generated category (only 'personal' files hold personal data; the "
            "policy also classes kinds such as 'other' personal by default):"
        ),
        f"{'corpus':<6} {'category':<9} {'files':>6} {'with findings':>14} {'data_class personal':>20} {'flagged':>8}",
    ]
    for c in corpora:
        for cat, n in sorted(categories.get(c.name, {}).items()):
            lines.append(
                f"{c.name:<6} {cat:<9} {n['files']:>6} {n['findings']:>14} {n['personal']:>20} {n['flagged']:>8}"
            )
    return "\n".join(lines)


def _notes(s: Series, corpus: Corpus) -> str:
    run = s.median_run()
    notes = []
    if s.label.startswith("agent"):
        if run.summary:
            notes.append(f"flagged {run.summary.get('detections')}/{len(corpus.planted)}")
            if run.summary.get("cached"):
                notes.append(f"cached {run.summary['cached']}")
        notes.append(f"peak RSS {max(r.peak_rss for r in s.runs) / MIB:.0f} MiB")
        notes.append(f"anon {max(r.peak_anon for r in s.runs) / MIB:.0f} MiB")
        notes.append(f"PSS {max(r.peak_pss for r in s.runs) / MIB:.0f} MiB")
        notes.append(f"CPU {run.cpu:.1f} s, parent {run.cpu_parent:.1f} s")
    elif run.flagged is not None:
        notes.append(f"flagged {run.flagged}/{len(corpus.planted)}")
    bad = sorted({r.rc for r in s.runs if r.rc not in (0, 1)})
    if bad:
        notes.append(f"EXIT {bad}")
    return ", ".join(notes)


def _targets(corpora: list[Corpus], results: dict[str, dict[str, Series]]) -> str:
    rows: list[tuple[str, float | None, str, bool | None]] = []

    def rate(corpus: str, key: str, by_bytes: bool = False) -> float | None:
        s = results.get(corpus, {}).get(key)
        c = next(c for c in corpora if c.name == corpus)
        if s is None:
            return None
        return (c.bytes / MIB if by_bytes else c.files) / s.median

    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a / b

    names = {c.name for c in corpora}
    if "small" in names:
        agent = rate("small", "agent_nocache")
        r = ratio(agent, rate("small", "clamscan"))
        rows.append(
            ("small: endpoint-agent files/s ÷ clamscan files/s", r, "≥ 5", None if r is None else r >= 5)
        )
        r = ratio(agent, rate("small", "yara"))
        rows.append(
            (
                "small: endpoint-agent files/s ÷ yara -r -p 2 files/s",
                r,
                "≥ 0.8",
                None if r is None else r >= 0.8,
            )
        )
    if "large" in names:
        r = ratio(rate("large", "agent_nocache", True), rate("large", "sha256sum", True))
        rows.append(
            ("large: endpoint-agent MiB/s ÷ sha256sum MiB/s", r, "≥ 1.5", None if r is None else r >= 1.5)
        )
    for c in corpora:
        cold, warm = results[c.name].get("agent_cold"), results[c.name].get("agent_warm")
        if cold and warm:
            r = cold.median / warm.median
            rows.append((f"{c.name}: second-scan speed-up (cold ÷ warm cache)", r, "≥ 10x", r >= 10))
    for c in corpora:
        runs = [run for k, s in results[c.name].items() if k.startswith("agent") for run in s.runs]
        for label, peak in (
            ("RSS", max((run.peak_rss for run in runs), default=0)),
            ("PSS", max((run.peak_pss for run in runs), default=0)),
        ):
            rows.append(
                (
                    f"{c.name}: endpoint-agent peak {label} of process tree (MB)",
                    peak / 1e6,
                    "≤ 300",
                    peak / 1e6 <= 300,
                )
            )
    out = [f"{'target':<58} {'value':>8}  {'target':<7} result", "-" * 84]
    for name, value, target, ok in rows:
        shown = "n/a" if value is None else f"{value:.2f}"
        verdict = "n/a" if ok is None else ("PASS" if ok else "MISS")
        out.append(f"{name:<58} {shown:>8}  {target:<7} {verdict}")
    return "\n".join(out)


# ---------------------------------------------------------------- corpus reuse and main


def _corpora(out: Path, small: int, large: int, seed: int) -> tuple[Corpus, Corpus, RuleSets]:
    """Generate into ``out``, or reuse what a run with the same parameters left there (``--keep``)."""
    manifest = out / _MANIFEST
    params = {"small": small, "large": large, "seed": seed, "generator": _generator_digest()}
    if manifest.exists():
        saved = json.loads(manifest.read_text())
        if saved.get("params") == params:
            _say(f"reusing the corpus in {out}")
            return _load_manifest(out, saved)
        _say(f"{out} holds a corpus made with other parameters: generating anew")
    for name in ("small", "large", "rules"):
        shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    small_c, large_c, rules = build_corpora(out, small, large, seed)
    _say(f"generated the corpus in {time.perf_counter() - started:.1f}s")
    manifest.write_text(json.dumps({"params": params, "corpora": [_dump(small_c), _dump(large_c)], "rules": {
        "agent_dir": str(rules.agent_dir), "yara_file": str(rules.yara_file), "clam_dir": str(rules.clam_dir),
        "yara_rules": rules.yara_rules, "hash_entries": rules.hash_entries,
    }}))  # fmt: skip
    return small_c, large_c, rules


def _generator_digest() -> str:
    import hashlib

    return hashlib.sha256((Path(__file__).resolve().parent / "_corpus.py").read_bytes()).hexdigest()[:16]


def _dump(c: Corpus) -> dict[str, Any]:
    return {
        "name": c.name,
        "root": str(c.root),
        "files": c.files,
        "bytes": c.bytes,
        "by_category": c.by_category,
        "planted": sorted(c.planted),
        "category_of": c.category_of,
    }


def _load_manifest(out: Path, saved: dict[str, Any]) -> tuple[Corpus, Corpus, RuleSets]:
    cs = [
        Corpus(
            d["name"],
            Path(d["root"]),
            d["files"],
            d["bytes"],
            d["by_category"],
            set(d["planted"]),
            d["category_of"],
        )
        for d in saved["corpora"]
    ]
    r = saved["rules"]
    rules = RuleSets(
        Path(r["agent_dir"]), Path(r["yara_file"]), Path(r["clam_dir"]), r["yara_rules"], r["hash_entries"]
    )
    return cs[0], cs[1], rules


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--small", type=int, default=20_000, metavar="N", help="small files (1-64 KiB)")
    parser.add_argument("--large", type=int, default=40, metavar="N", help="large files (16-64 MiB)")
    parser.add_argument(
        "--keep", type=Path, metavar="DIR", help="generate into DIR, keep it, reuse it next time"
    )
    parser.add_argument("--skip-clamscan", action="store_true", help="do not run clamscan")
    parser.add_argument("--repeat", type=int, default=3, metavar="N", help="runs per command (median)")
    parser.add_argument("--jobs", type=int, metavar="N", help="pass --jobs N to endpoint-agent")
    parser.add_argument("--seed", type=int, default=20240601, help="corpus seed")
    parser.add_argument("--only", choices=("small", "large"), help="benchmark one corpus only")
    args = parser.parse_args(argv)

    tools = _tools(args.skip_clamscan)
    for name, path in (("yara", tools.yara), ("clamscan", tools.clamscan)):
        if path is None and not (name == "clamscan" and args.skip_clamscan):
            _say(f"note: {name} not found (apt-get install -y yara clamav); its rows are left out")
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp:
        work = Path(tmp)
        out = args.keep.resolve() if args.keep else work / "corpus"
        small, large, rules = _corpora(out, args.small, args.large, args.seed)
        corpora = [c for c in (small, large) if c.files and args.only in (None, c.name)]
        results, categories = {}, {}
        for c in corpora:
            results[c.name], categories[c.name] = bench_corpus(c, rules, tools, work, args.repeat, args.jobs)
        print(report(corpora, results, rules, args.jobs))
        print()
        print(category_report(corpora, categories))
    return 0


if __name__ == "__main__":
    sys.exit(main())
