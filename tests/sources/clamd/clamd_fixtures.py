"""Fixtures for the clamd socket tests: a real in-process scan backend, servers, and a raw client.

This is a plugin module, not a conftest.py: a conftest.py here would be imported under the bare name
``conftest`` and shadow tests/conftest.py for the modules that ``from conftest import ...``. Test
modules load it with ``pytest_plugins = ["clamd_fixtures"]``.

:class:`InProcessScanBackend` is TEST SCAFFOLDING, not product code: it stands in for the service's
dispatcher until that is wired. It does real scans (the bundled rules, the real pipeline) on one
thread, which builds its own YARA-X scanner (a scanner must stay on the thread that made it).
"""

from __future__ import annotations

import array
import concurrent.futures
import datetime as dt
import os
import shutil
import socket
import stat
import struct
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Self

import pytest

from agent import __version__
from agent.config import bundled_rules_dir
from agent.engine import DEFAULT_LIMITS, ENGINE_VERSION, load_rules
from agent.minimize import Identity, MasterSecret, Policy, period_label
from agent.model import Outcome, ScanRequest, Source
from agent.pipeline import setup
from agent.sources.clamd import ClamdServer, ClamdSettings
from agent.worker import WorkerContext

HANG_GUARD = 30.0  # seconds; only ever a guard against a hang, never a measurement


class InProcessScanBackend:
    """TEST SCAFFOLDING: the clamd Backend protocol over real scans on one worker thread."""

    def __init__(self, ctx: WorkerContext) -> None:
        self._ctx = ctx
        self._handler: Callable[[ScanRequest], Outcome] | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, initializer=self._build, thread_name_prefix="test-scan"
        )
        self.gate = threading.Event()
        self.gate.set()
        self.entered = 0  # scans that reached the worker (counted before the gate)
        self.seen: list[dict[str, Any]] = []
        self.reloads = 0
        self.shutdowns = 0

    def _build(self) -> None:
        self._handler = setup(self._ctx)  # on the worker thread, which then keeps its scanner

    def _scan(self, request: ScanRequest) -> Outcome:
        self.entered += 1
        self.gate.wait(HANG_GUARD)
        self.seen.append(_describe(request))
        if self._handler is None:
            raise RuntimeError("scan worker did not start")
        return self._handler(request)

    def submit(self, request: ScanRequest) -> concurrent.futures.Future[Outcome]:
        return self._executor.submit(self._scan, request)

    def version(self) -> str:
        return f"endpoint-agent {__version__}/{self._ctx.rules.version}"

    def reload(self) -> None:
        self.reloads += 1

    def shutdown(self) -> None:
        self.shutdowns += 1

    def stats(self) -> Mapping[str, int]:
        return {"threads_live": 1, "threads_idle": 1, "threads_max": 1, "queue": 0, "scanned": len(self.seen)}

    def _drop(self) -> None:
        self._handler = None  # the scanner must be dropped on the thread that made it

    def close(self) -> None:
        self.gate.set()
        self._executor.submit(self._drop).result(HANG_GUARD)
        self._executor.shutdown(wait=True, cancel_futures=True)


def _describe(request: ScanRequest) -> dict[str, Any]:
    """What a test may check about a request: never its bytes."""
    seen: dict[str, Any] = {
        "source": request.source,
        "display": request.display,
        "in_memory": request.data is not None,
        "size": len(request.data) if request.data is not None else None,
        "path": request.path,
        "act": request.act,
    }
    if request.data is None and request.source is Source.STREAM:
        st = os.stat(request.path)
        seen["spool_mode"] = stat.S_IMODE(st.st_mode)
        seen["size"] = st.st_size
        seen["spool_dir_mode"] = stat.S_IMODE(os.stat(os.path.dirname(request.path)).st_mode)
    return seen


@pytest.fixture(scope="session")
def clamd_worker_context(tmp_path_factory) -> WorkerContext:
    rules = load_rules(bundled_rules_dir())
    policy = Policy.load(bundled_rules_dir() / "policy.toml")
    secret = MasterSecret.load_or_create(tmp_path_factory.mktemp("clamd-state"))
    pseudonym = secret.pseudonym("verdicts", period_label(dt.datetime.now(dt.UTC), "month"))
    return WorkerContext(rules, DEFAULT_LIMITS, policy, Identity(pseudonym, ENGINE_VERSION, rules.version))


@pytest.fixture
def clamd_backend(clamd_worker_context) -> Iterator[InProcessScanBackend]:
    backend = InProcessScanBackend(clamd_worker_context)
    yield backend
    backend.close()


@pytest.fixture
def clamd_dir() -> Iterator[Path]:
    """A short private directory (Unix socket paths are limited to 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="clamd-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def clamd_factory(clamd_dir, clamd_backend) -> Iterator[Callable[..., ClamdServer]]:
    """Start servers on sockets in ``clamd_dir`` with settings overrides; all closed afterwards."""
    servers: list[ClamdServer] = []

    def make(backend: Any = None, **overrides: Any) -> ClamdServer:
        settings = ClamdSettings(socket_path=clamd_dir / f"c{len(servers)}.sock", **overrides)
        server = ClamdServer(settings, backend or clamd_backend, clamd_dir / "spool")
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def clamd_server(clamd_factory) -> ClamdServer:
    return clamd_factory()


class RawClient:
    """A clamd client written for the tests: exact bytes out, exact bytes back."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))  # blocking, like real clients: waits while the backlog is full
        self.sock.settimeout(HANG_GUARD)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_fd(self, data: bytes, fd: int) -> None:
        self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])

    def read_all(self) -> bytes:
        """Everything until the server closes (an ECONNRESET after the data also counts as closed)."""
        chunks = []
        while True:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)

    def read_until(self, terminator: bytes, count: int = 1) -> bytes:
        data = b""
        while data.count(terminator) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data

    def close(self) -> None:
        self.sock.close()


def chunks(data: bytes, size: int = 4096) -> bytes:
    """``data`` framed as INSTREAM chunks, with the zero-length end."""
    out = [struct.pack("!L", len(data[i : i + size])) + data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(out) + struct.pack("!L", 0)


@pytest.fixture
def clamd_raw() -> Iterator[Callable[[Path], RawClient]]:
    clients: list[RawClient] = []

    def connect(path: Path) -> RawClient:
        client = RawClient(path)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


def query(path: Path, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection and return all the server answers before closing."""
    with RawClient(path) as client:
        client.send(data)
        return client.read_all()


@pytest.fixture
def clamd_query() -> Callable[[Path, bytes], bytes]:
    return query


@pytest.fixture
def clamd_chunks() -> Callable[..., bytes]:
    return chunks
