"""The PyInstaller build scripts: what the binary bundles and leaves out, and the self-test's own parts.

Building the binary takes about half a minute, so it is not done here: ``.ci/run`` builds it and runs
``build/selftest.py`` against it. These tests check the self-test itself (its clamd client, and every
check passing against the source tree), so a failure against the binary points at packaging.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from conftest import ROOT
from hypothesis import given
from hypothesis import strategies as st


def _load(name: str, as_name: str) -> ModuleType:
    """Import ``build/<name>.py`` as ``as_name`` (build/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(as_name, ROOT / "build" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[as_name] = module
    spec.loader.exec_module(module)
    return module


support = _load("selftest_support", "selftest_support")  # the name selftest.py imports it by
selftest = _load("selftest", "_build_selftest")
build = _load("build", "_build_script")


def _unframe(frames: bytes) -> tuple[list[bytes], bytes]:
    """Decode INSTREAM chunks as clamd does; return the data chunks and whatever follows the end."""
    chunks: list[bytes] = []
    pos = 0
    while True:
        length = int.from_bytes(frames[pos : pos + 4], "big")
        pos += 4
        if length == 0:
            return chunks, frames[pos:]
        chunks.append(frames[pos : pos + length])
        pos += length


@given(data=st.binary(max_size=20_000), chunk=st.integers(min_value=1, max_value=5_000))
def test_instream_frames_round_trip(data, chunk):
    """INSTREAM frames decode back to the data, no chunk over the size, then exactly one end chunk."""
    chunks, after = _unframe(support.instream_frames(data, chunk))
    assert b"".join(chunks) == data
    assert all(0 < len(c) <= chunk for c in chunks)
    assert after == b""


def test_instream_frames_reject_empty_chunk_size():
    """A chunk size below one is refused rather than looping forever."""
    with pytest.raises(ValueError, match="chunk"):
        support.instream_frames(b"data", 0)


def _feeder(wire: bytes, cuts: list[int]):
    """A ``recv`` that hands out ``wire`` in pieces of the given sizes, then the rest, then EOF."""
    pieces, pos = [], 0
    for size in cuts:
        pieces.append(wire[pos : pos + size])
        pos += size
    pieces.append(wire[pos:])
    queue = [p for p in pieces if p]
    return lambda _max: queue.pop(0) if queue else b""


@given(
    reply=st.text(max_size=200).filter(lambda t: "\0" not in t),
    trailing=st.binary(max_size=50),
    cuts=st.lists(st.integers(min_value=1, max_value=40), max_size=20),
)
def test_read_reply_reassembles_any_split(reply, trailing, cuts):
    """A NUL-terminated reply arriving in arbitrary pieces reads whole, up to the first NUL."""
    wire = reply.encode() + b"\0" + trailing
    assert support.read_reply(_feeder(wire, cuts)) == reply


@given(partial=st.binary(max_size=200).filter(lambda b: b"\0" not in b))
def test_read_reply_cut_short_is_a_failed_check(partial):
    """A connection that closes before the NUL fails the check instead of passing a partial reply."""
    with pytest.raises(support.CheckFailed, match="cut short"):
        support.read_reply(_feeder(partial, []))


@pytest.mark.parametrize(
    ("line", "wired"),
    [
        ("from agent.sources.clamd import ClamdServer, ClamdSettings", True),
        ("        from agent.sources.clamd import ClamdServer  # noqa: PLC0415", True),
        ("from agent.sources import ClamdServer, Walker", True),
        ("import agent.sources.clamd", True),
        ("threads: the clamd-compatible socket (streams and paths)", False),
        ("from agent.sources import Walker", False),
        ("from agent.sources.clamdish import x", False),
    ],
)
def test_clamd_wiring_is_recognised_from_the_import(line, wired):
    """The self-test requires the clamd socket exactly when agent/service.py imports the clamd source."""
    assert bool(selftest._CLAMD_IMPORT.search(f"x = 1\n{line}\n")) is wired


def test_rules_are_bundled_where_the_installed_package_has_them():
    """The binary carries rules/ at agent/bundled_rules, where pip installs it and bundled_rules_dir looks."""
    package_dir = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    assert package_dir["agent.bundled_rules"] == "rules"
    agent = next(t for t in build.targets() if t.name == "endpoint-agent")
    assert (ROOT / "rules", "agent/bundled_rules") in agent.datas
    assert (ROOT / "rules" / "policy.toml").is_file()


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_agent_imports_nothing_the_binary_leaves_out():
    """No agent module imports a module the build excludes, so an exclusion cannot break a frozen run."""
    offending = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / "agent").rglob("*.py")
        for name in _imported_modules(path)
        if any(name == ex or name.startswith(f"{ex}.") for ex in build.EXCLUDES)
    }
    assert not offending, f"the binary excludes these (build/build.py EXCLUDES): {sorted(offending)}"


def test_no_build_file_holds_eicar_whole():
    """The self-test assembles EICAR at run time; no file of build/ holds the whole string."""
    whole = support.eicar()
    base = ROOT / "build"
    sources = [*base.glob("*.py"), *base.glob("hooks/*.py")]  # not the generated dist/, work/, lib/
    assert sources
    assert not [p for p in sources if whole in p.read_bytes()]


@pytest.mark.slow
def test_selftest_passes_against_the_source_tree():
    """Every self-test check passes (or is skipped with its reason) against ``python -m agent``."""
    cmd = [sys.executable, str(ROOT / "build" / "selftest.py")]
    cmd += ["--agent-cmd", f"{shlex.quote(sys.executable)} -m agent"]
    if (ROOT / "installer" / "__main__.py").exists():
        cmd += ["--setup-cmd", f"{shlex.quote(sys.executable)} -m installer"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    passed = set(re.findall(r"^\[PASS\] (.+) \([\d.]+ s\): ", out.stdout, re.MULTILINE))
    assert {"version", "scan eicar", "scan directory (spawn worker pool)", "service run + SIGTERM"} <= passed
    assert "[FAIL]" not in out.stdout
