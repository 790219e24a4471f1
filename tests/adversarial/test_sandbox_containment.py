"""The scan sandbox, in real worker processes: what it stops, and that the scan goes on around it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import samples
import sandbox_helpers

from agent import session as session_module
from agent.config import Config
from agent.engine import DEFAULT_LIMITS, Failure, WorkerPool
from agent.engine.sandbox import address_space
from agent.model import ScanRequest, VerdictKind
from agent.session import ScanSession, SessionOptions

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux-only")

HERE = Path(__file__).resolve().parent
CAP_DAC_READ_SEARCH = 1 << 2
# An ordinary user; it keeps read access to the interpreter, which may live under root's 0700 home.
AS_NOBODY = (
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--inh-caps=+dac_read_search",
    "--ambient-caps=+dac_read_search",
)


def probe(items, settings=None, inherited=None, timeout=30.0, limits=DEFAULT_LIMITS):
    """Run ``items`` through one confined probe worker; return (results by item, restarts)."""
    payload = (limits, settings or {}, str(inherited) if inherited else None)
    with WorkerPool(1, sandbox_helpers.setup_probe, payload, timeout) as pool:
        results = dict(pool.map_unordered(items))
        return results, pool.restarts


@pytest.fixture
def listener():
    """A TCP listener on 127.0.0.1 in the test's own network namespace; yields (port, accepted())."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)

    def accepted() -> bool:
        try:
            conn, _ = server.accept()
        except TimeoutError:
            return False
        conn.close()
        return True

    try:
        yield server.getsockname()[1], accepted
    finally:
        server.close()


def test_worker_is_confined():
    """A worker runs with no new privileges, its own network namespace, no core dumps and no file writes."""
    results, _ = probe([("status", None)])
    status = results[("status", None)]
    assert status["no_new_privs"] == "1"
    assert status["netns"] != os.readlink("/proc/self/ns/net")
    assert status["limits"]["RLIMIT_FSIZE"] == (0, 0)
    assert status["limits"]["RLIMIT_CORE"] == (0, 0)
    assert status["limits"]["RLIMIT_NOFILE"] == (64, 64)
    assert status["limits"]["RLIMIT_AS"][0] == status["limits"]["RLIMIT_AS"][1] > 0


def _permitted_caps() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        return next(int(line.split()[1], 16) for line in fh if line.startswith("CapPrm:"))


@pytest.mark.skipif(
    os.geteuid() != 0 or not _permitted_caps() & CAP_DAC_READ_SEARCH,
    reason="the privilege drop applies to root holding CAP_DAC_READ_SEARCH only",
)
def test_root_worker_runs_as_nobody_reading_only():
    """Under root, a worker runs as nobody with CAP_DAC_READ_SEARCH alone, effective and bounding."""
    results, _ = probe([("status", None)])
    status = results[("status", None)]
    assert status["euid"] == 65534
    assert status["cap_eff"] == CAP_DAC_READ_SEARCH
    assert status["cap_bnd"] == CAP_DAC_READ_SEARCH


def test_python_socket_is_refused():
    """Creating a socket from Python raises the sandbox's refusal; the worker lives on."""
    results, restarts = probe([("py-socket", None), ("pid", None)])
    refused = results[("py-socket", None)]
    assert refused[0:2] == ("refused", "SandboxViolation")
    assert "socket" in refused[3]
    assert restarts == 0


def test_native_connect_never_reaches_the_host(listener):
    """A connect through libc, past the audit hook, fails in the empty namespace; nothing arrives."""
    port, accepted = listener
    results, _ = probe([("native-connect", port)])
    _, (rc, err) = results[("native-connect", port)]
    assert rc == -1
    assert err != 0
    assert not accepted()


def test_native_connect_without_the_sandbox_does_reach_the_host(listener):
    """The same libc connect from an unconfined worker is accepted: the test above can fail."""
    port, accepted = listener
    results, _ = probe([("native-connect", port)], settings={"enabled": False})
    _, (rc, _err) = results[("native-connect", port)]
    assert rc == 0
    assert accepted()


def test_file_writes_are_refused(tmp_path):
    """Python opens for writing are refused; a libc write lands nothing; an inherited fd cannot grow a file."""
    target = tmp_path / "py.out"
    native = tmp_path / "native.out"
    inherited = tmp_path / "inherited.out"
    results, _ = probe(
        [("py-write", str(target)), ("native-write", str(native)), ("inherited-write", None)],
        inherited=inherited,
    )
    assert results[("py-write", str(target))][0:2] == ("refused", "SandboxViolation")
    assert not target.exists()
    fd, _, written, _ = results[("native-write", str(native))][1]
    assert fd < 0 or written < 0  # nobody may not create here; as any user FSIZE=0 stops the byte
    assert not native.exists() or native.stat().st_size == 0
    assert results[("inherited-write", None)][0:3] == ("refused", "OSError", 27)  # EFBIG
    assert inherited.stat().st_size == 0


def test_starting_a_process_is_refused():
    """A worker cannot start a program."""
    results, _ = probe([("py-spawn", None)])
    assert results[("py-spawn", None)][0:2] == ("refused", "SandboxViolation")


def test_allocation_past_the_address_space_fails_at_once():
    """A 2 GiB allocation fails with MemoryError at once (no RSS ceiling is set here); the worker lives on."""
    results, restarts = probe([("alloc", 2 << 30), ("alloc", 1 << 20)])
    assert results[("alloc", 2 << 30)][0:2] == ("refused", "MemoryError")
    assert results[("alloc", 1 << 20)] == ("done", 1 << 20)
    assert restarts == 0


def test_native_allocation_fails_confined_and_succeeds_unconfined():
    """A 2 GiB malloc gets NULL in a confined worker and memory in an unconfined one: the limit decides."""
    confined, _ = probe([("malloc", 2 << 30)])
    unconfined, _ = probe([("malloc", 2 << 30)], settings={"enabled": False})
    assert confined[("malloc", 2 << 30)] == ("done", False)
    assert unconfined[("malloc", 2 << 30)] == ("done", True)


def test_an_uncaught_memory_error_costs_one_item():
    """A worker that dies of an allocation fails its item; the next item gets a fresh worker."""
    items = [("pid", None), ("alloc-uncaught", 2 << 30), ("alloc", 1 << 20)]
    results, restarts = probe(items)
    assert isinstance(results[("alloc-uncaught", 2 << 30)], Failure)
    assert results[("alloc", 1 << 20)] == ("done", 1 << 20)
    assert restarts == 1


def test_address_space_grows_with_the_limits_and_rules():
    """RLIMIT_AS covers the file size limits and the rules, so a larger max_file_size gets more room."""
    small = address_space(DEFAULT_LIMITS, 0, 0)
    assert address_space(replace(DEFAULT_LIMITS, max_file_size=200 << 20), 0, 0) > small
    assert address_space(DEFAULT_LIMITS, 10 << 20, 0) > small


def test_per_item_cpu_limit_ends_a_spinning_worker():
    """With arm_cpu, an item that spins is ended by SIGXCPU well before the wall-clock timeout."""
    results, restarts = probe([("spin", 1), ("pid", None)], timeout=60.0)
    failure = results[("spin", 1)]
    assert isinstance(failure, Failure)
    assert "SIGXCPU" in failure.detail or "SIGKILL" in failure.detail
    assert restarts == 1


def test_worker_dies_with_its_parent(tmp_path):
    """When the process that owns the pool is killed, its confined worker does not live on."""
    script = (
        "import sys, json; sys.path[:0] = sys.argv[1:]\n"
        "import sandbox_helpers\n"
        "from agent.engine import DEFAULT_LIMITS, WorkerPool\n"
        "pool = WorkerPool(1, sandbox_helpers.setup_probe, (DEFAULT_LIMITS, {}, None), 600.0)\n"
        "for item, result in pool.map_unordered([('pid', None)]):\n"
        "    print(json.dumps(result), flush=True)\n"
        "for item, result in pool.map_unordered([('hang', None)]):\n"
        "    pass\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(HERE), str(HERE.parent)], stdout=subprocess.PIPE, text=True
    )
    try:
        worker = json.loads(proc.stdout.readline())[1]
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(worker):
        time.sleep(0.05)
    assert not _alive(worker)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start a process as nobody")
def test_unprivileged_worker_gets_a_user_and_network_namespace():
    """Started by an ordinary user, a worker still gets its own network namespace (inside a user one)."""
    script = (
        "import sys, json, os; sys.path[:0] = sys.argv[1:]\n"
        "import sandbox_helpers\n"
        "from agent.engine import DEFAULT_LIMITS, WorkerPool\n"
        "with WorkerPool(1, sandbox_helpers.setup_probe, (DEFAULT_LIMITS, {}, None), 60.0) as pool:\n"
        "    out = dict(pool.map_unordered([('status', None), ('confinement', None), ('py-socket', None)]))\n"
        "print(json.dumps({'parent': os.readlink('/proc/self/ns/net'), 'status': out[('status', None)],\n"
        "    'network': out[('confinement', None)].network, 'socket': out[('py-socket', None)]}))\n"
    )
    proc = subprocess.run(
        [*AS_NOBODY, sys.executable, "-c", script, str(HERE)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["network"] == "user namespace"
    assert report["status"]["netns"] != report["parent"]
    assert report["status"]["cap_eff"] == 0
    assert report["socket"][1] == "SandboxViolation"


# ---------------------------------------------------------------- the real session, with a hostile parser


@pytest.fixture
def hostile_session(tmp_path, monkeypatch):
    """A real ScanSession whose workers are the real (sandboxed) ones with a hostile zip walker."""
    monkeypatch.setattr(session_module, "setup", sandbox_helpers.setup_hostile)
    config = Config(state_dir=tmp_path / "state", config_file=tmp_path / "agent.toml")
    (tmp_path / "state").mkdir()

    def scan(paths: list[Path]) -> dict[str, object]:
        requests = [ScanRequest(path=str(p)) for p in paths]
        with ScanSession(config, SessionOptions(jobs=1, use_cache=False)) as session:
            return {os.path.basename(o.request.path): o for o in session.scan(requests)}

    return scan


def _stored_zip(path: Path, marker: bytes) -> Path:
    """A zip whose only member holds ``marker`` uncompressed, so the hostile walker sees it."""
    import zipfile

    path.write_bytes(samples.zip_of({"note.txt": marker}, compression=zipfile.ZIP_STORED))
    return path


def _controls(tmp_path: Path) -> list[Path]:
    (tmp_path / "eicar.com").write_bytes(samples.eicar())
    (tmp_path / "deep.zip").write_bytes(samples.nested_zip(samples.eicar(), 3))
    (tmp_path / "letter.txt").write_text("Dear Sir,\nthe minutes are attached.\n")
    return [tmp_path / "eicar.com", tmp_path / "deep.zip", tmp_path / "letter.txt"]


def _assert_controls(outcomes) -> None:
    assert outcomes["eicar.com"].verdict.kind is VerdictKind.MALICIOUS
    assert outcomes["deep.zip"].verdict.kind is VerdictKind.MALICIOUS
    assert outcomes["letter.txt"].verdict.kind is VerdictKind.CLEAN


def test_parser_opening_a_socket_gets_an_error_verdict_and_the_scan_goes_on(tmp_path, hostile_session):
    """An exploited parser's socket is refused: that archive is an error naming the refusal, the rest scan."""
    hostile = _stored_zip(tmp_path / "socket.zip", b"hostile:socket")
    outcomes = hostile_session([hostile, *_controls(tmp_path)])
    verdict = outcomes["socket.zip"].verdict
    assert verdict.kind is VerdictKind.ERROR
    assert "SandboxViolation" in verdict.reason
    _assert_controls(outcomes)


def test_parser_connecting_natively_reaches_nothing(tmp_path, hostile_session, listener):
    """A libc connect from inside the parser fails in the worker's namespace; the listener sees nothing."""
    port, accepted = listener
    hostile = _stored_zip(tmp_path / "connect.zip", b"hostile:connect:%05d" % port)
    outcomes = hostile_session([hostile, *_controls(tmp_path)])
    assert outcomes["connect.zip"].verdict.kind is VerdictKind.ERROR
    assert not accepted()
    _assert_controls(outcomes)


def test_parser_writing_a_file_gets_an_error_verdict_and_writes_nothing(tmp_path, hostile_session):
    """An exploited parser's file write is refused; no file appears; the other files are scanned."""
    target = tmp_path / "dropped.bin"
    hostile = _stored_zip(tmp_path / "write.zip", b"hostile:write:" + str(target).encode() + b"\n")
    outcomes = hostile_session([hostile, *_controls(tmp_path)])
    assert outcomes["write.zip"].verdict.kind is VerdictKind.ERROR
    assert "SandboxViolation" in outcomes["write.zip"].verdict.reason
    assert not target.exists()
    _assert_controls(outcomes)


def test_parser_allocating_past_the_limit_is_not_clean_and_the_scan_goes_on(tmp_path, hostile_session):
    """A 2 GiB allocation in a parser fails at once; that archive is not clean; the others are scanned."""
    hostile = _stored_zip(tmp_path / "alloc.zip", b"hostile:alloc")
    outcomes = hostile_session([hostile, *_controls(tmp_path)])
    verdict = outcomes["alloc.zip"].verdict
    assert verdict.kind in (VerdictKind.ERROR, VerdictKind.UNSCANNED)
    assert "MemoryError" in verdict.reason or "MaxMemory" in verdict.reason
    _assert_controls(outcomes)


def test_a_refusal_outside_every_boundary_costs_one_worker_and_one_object(tmp_path, hostile_session):
    """A worker that dies of a refused socket gives its object an error; a fresh worker scans the rest."""
    victim = tmp_path / "die-by-socket.txt"
    victim.write_text("x")
    outcomes = hostile_session([victim, *_controls(tmp_path)])
    verdict = outcomes["die-by-socket.txt"].verdict
    assert verdict.kind is VerdictKind.ERROR
    assert "worker" in verdict.reason
    _assert_controls(outcomes)
