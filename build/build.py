"""Build the one-file binaries ``build/dist/endpoint-agent`` and ``build/dist/endpoint-agent-setup``.

Run ``python build/build.py`` from the venv that has the project and PyInstaller installed. Each
binary is built by PyInstaller in its own process, then the log prints its size and the median cold
start time of ``--version``. ``endpoint-agent-setup`` is built only when ``installer/__main__.py``
exists. A binary over the size target fails the build; a slow start is reported, not failed, because
timing on a shared machine is noisy.

The entry script of each binary runs the package's ``__main__`` exactly as ``python -m`` does, so
``agent/__main__.py`` calling ``multiprocessing.freeze_support()`` first is what lets the
spawn-context scan workers re-execute the binary as workers.
"""

# ruff: noqa: INP001, T201
# (build/ is a folder of standalone scripts, not a package; a build script prints its log.)

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "build" / "dist"
WORK = ROOT / "build" / "work"
HOOKS = ROOT / "build" / "hooks"
MAX_SIZE = 60 << 20  # bytes: the size target of one binary
MAX_START = 1.0  # seconds: the cold start target of ``--version``
START_RUNS = 7
PYINSTALLER_REQUIREMENT = "pyinstaller>=6.22"  # the release this build is tested with

# Not part of the agent binary: test and dev tools, the reference cloud and its web stack, GUI
# toolkits, and phonenumbers' geocoding/carrier/time-zone tables (about 43 MB; the detectors only
# parse and validate numbers; build/hooks/hook-phonenumbers.py keeps them out of the analysis too).
# pkg_resources is only python-stdnum's fallback for Pythons without importlib.resources, and its
# runtime hook would cost every start; click is only httpx's optional command line.
EXCLUDES = (
    "IPython",
    "_pytest",
    "black",
    "clamd",
    "click",
    "cloud",
    "coverage",
    "curses",
    "faker",
    "hypothesis",
    "idlelib",
    "jinja2",
    "lib2to3",
    "matplotlib",
    "mypy",
    "mypyc",
    "numpy",
    "pandas",
    "phonenumbers.carrier",
    "phonenumbers.carrierdata",
    "phonenumbers.geocoder",
    "phonenumbers.geodata",
    "phonenumbers.timezone",
    "phonenumbers.tzdata",
    "pip",
    "pkg_resources",
    "pydoc_data",
    "pytest",
    "ruff",
    "setuptools",
    "starlette",
    "tests",
    "tkinter",
    "turtledemo",
    "uvicorn",
    "wheel",
)

_ENTRY = '''"""Frozen entry point of {name}: run ``{package}.__main__`` as ``python -m {package}`` does."""

import runpy

runpy.run_module("{package}", run_name="__main__", alter_sys=True)
'''


@dataclass(frozen=True, slots=True)
class Target:
    """One binary: its name, the package whose ``__main__`` it runs, and what it bundles."""

    name: str
    package: str
    datas: tuple[tuple[Path, str], ...] = ()
    metadata: tuple[str, ...] = ()
    # Native extension packages the binary must carry wherever the build environment has them: the
    # agent would otherwise run on a slower fallback (YARA-X for the trigger search) without a word.
    native: tuple[str, ...] = ()

    @property
    def main(self) -> Path:
        """The package's ``__main__.py``; the binary is built only when it exists."""
        return ROOT / self.package / "__main__.py"


def targets() -> tuple[Target, ...]:
    """The binaries this script knows how to build."""
    agent = Target(
        name="endpoint-agent",
        package="agent",
        # agent.config.bundled_rules_dir() looks next to agent/config.py for bundled_rules/; in the
        # frozen app that is sys._MEIPASS/agent/bundled_rules. policy.toml is part of rules/.
        datas=((ROOT / "rules", "agent/bundled_rules"),),
        metadata=("yara-x",),  # the engine version names the yara-x release (its dist-info directory)
        native=("yara_x", "hyperscan"),
    )
    # The setup program reads the purposes and notices it shows from the bundled rules, as the agent does.
    setup = Target(
        name="endpoint-agent-setup",
        package="installer",
        datas=(*_package_data("installer"), (ROOT / "rules", "agent/bundled_rules")),
    )
    return agent, setup


def _package_data(package: str) -> tuple[tuple[Path, str], ...]:
    """Every non-Python file of ``package`` (ages table, unit templates), at its place in the bundle."""
    base = ROOT / package
    if not base.is_dir():
        return ()
    return tuple(
        (path, str(Path(package) / path.parent.relative_to(base)))
        for path in sorted(base.rglob("*"))
        if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in path.parts
    )


def pyinstaller_args(target: Target, entry: Path) -> list[str]:
    """The PyInstaller command line for ``target``."""
    args = [
        "--onefile",
        "--noconfirm",
        "--log-level=WARN",
        f"--name={target.name}",
        f"--distpath={DIST}",
        f"--workpath={WORK}",
        f"--specpath={WORK}",
        f"--paths={ROOT}",
        f"--collect-submodules={target.package}",  # every lazy import inside our own code
        f"--hidden-import={target.package}.__main__",
        f"--additional-hooks-dir={HOOKS}",
        "--strip",
    ]
    args += [f"--add-data={src}{os.pathsep}{dest}" for src, dest in target.datas]
    args += [f"--copy-metadata={dist}" for dist in target.metadata]
    args += [f"--exclude-module={name}" for name in EXCLUDES]
    return [*args, str(entry)]


def build(target: Target, clean: bool) -> Path:
    """Run PyInstaller for ``target`` and return the binary's path."""
    entry = WORK / "entry" / f"{target.name.replace('-', '_')}.py"
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.write_text(_ENTRY.format(name=target.name, package=target.package))
    cmd = [sys.executable, "-m", "PyInstaller", *pyinstaller_args(target, entry)]
    if clean:
        cmd.insert(3, "--clean")
    subprocess.run(cmd, cwd=ROOT, check=True)
    return DIST / target.name


def cold_start(binary: Path, runs: int = START_RUNS) -> list[float]:
    """Wall-clock seconds of ``binary --version``, once per run (each run unpacks the archive anew)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([binary, "--version"], check=True, capture_output=True, timeout=60)
        times.append(time.perf_counter() - started)
    return times


def missing_native(target: Target, binary: Path) -> list[str]:
    """The packages of ``target.native`` installed here whose extension modules ``binary`` lacks."""
    from PyInstaller.archive.readers import CArchiveReader  # noqa: PLC0415 - only after a build

    bundled = {name.split("/", 1)[0] for name in CArchiveReader(str(binary)).toc if "/" in name}
    return [pkg for pkg in target.native if importlib.util.find_spec(pkg) and pkg not in bundled]


def report(target: Target, binary: Path) -> bool:
    """Print the size and cold start of ``binary``; return whether all is well.

    All is well when the binary bundles its native packages, starts, and is within the size target.
    """
    missing = missing_native(target, binary)
    if missing:
        print(f"== {binary.name}: native packages installed here but not bundled: {', '.join(missing)}")
        return False
    size = binary.stat().st_size
    try:
        times = cold_start(binary)
    except subprocess.CalledProcessError as exc:
        print(
            f"== {binary.name}: --version FAILED (exit {exc.returncode}):",
            exc.stderr.decode(errors="replace"),
        )
        return False
    median = statistics.median(times)
    size_ok = size <= MAX_SIZE
    print(f"== {binary.name}: size {size / (1 << 20):.1f} MiB (target < {MAX_SIZE >> 20} MiB)", end="")
    print("" if size_ok else "  ** OVER TARGET **")
    print(
        f"== {binary.name}: --version cold start median {median:.3f} s over {len(times)} runs "
        f"(first {times[0]:.3f} s, min {min(times):.3f} s, max {max(times):.3f} s; target < {MAX_START} s)",
        end="",
    )
    print("" if median < MAX_START else "  ** OVER TARGET (reported, not failed) **")
    return size_ok


def main(argv: list[str] | None = None) -> int:
    """Build every target whose entry exists; return 0 when all built within the size target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", action="store_true", help="drop PyInstaller's cache and build/dist first")
    args = parser.parse_args(argv)
    if args.clean:
        shutil.rmtree(DIST, ignore_errors=True)
    try:
        pyinstaller = importlib.metadata.version("pyinstaller")
    except importlib.metadata.PackageNotFoundError:
        print(
            f"build: PyInstaller is not installed; pip install '{PYINSTALLER_REQUIREMENT}'", file=sys.stderr
        )
        return 2
    print(f"== PyInstaller {pyinstaller}, Python {sys.version.split()[0]}, {sys.platform}")
    ok = True
    started = time.monotonic()
    for target in targets():
        if not target.main.exists():
            print(f"== {target.name}: SKIPPED, {target.main.relative_to(ROOT)} does not exist yet")
            (DIST / target.name).unlink(missing_ok=True)  # never self-test a stale binary
            continue
        t0 = time.monotonic()
        try:
            binary = build(target, args.clean)
        except subprocess.CalledProcessError as exc:
            print(f"== {target.name}: PyInstaller FAILED (exit {exc.returncode})", file=sys.stderr)
            return 1
        print(f"== {target.name}: built in {time.monotonic() - t0:.1f} s -> {binary.relative_to(ROOT)}")
        ok = report(target, binary) and ok
    print(f"== build finished in {time.monotonic() - started:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
