"""The clamd-compatible server: a Unix socket (and optionally loopback TCP) in front of a scan backend.

The server does not scan. It speaks the protocol (:mod:`agent.sources.clamd.protocol`), holds
stream content briefly (:mod:`agent.sources.clamd.spool`) and hands each object to a
:class:`Backend`. It runs an asyncio loop on one thread of its own, plus a few I/O threads for
blocking file work, so that one slow or hostile client costs a socket, never the other clients'
service.

::

    server = ClamdServer(settings, backend, spool_dir)
    server.start()      # binds (errors raise here), then serves on its own thread
    ...
    server.close()      # stops accepting, drops the connections, removes the socket file
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import os
import socket
import stat
import struct
import threading
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, Self

import structlog

from agent.errors import ConfigError
from agent.model import Outcome, ScanRequest
from agent.sources.clamd.connection import Connection, Peer
from agent.sources.clamd.context import ServerContext
from agent.sources.clamd.settings import ClamdSettings
from agent.sources.clamd.spool import MemoryBudget, prepare_spool

__all__ = ["Backend", "ClamdServer"]

log = structlog.get_logger("endpoint-agent")
_BACKLOG = 512  # the kernel caps it at net.core.somaxconn
_IO_THREADS = 4
_CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid
_LOG_EVERY = 100  # log the first refused connection, then every 100th


class Backend(Protocol):
    """What the server hands work to. Every method may be called from the server's loop thread."""

    def submit(self, request: ScanRequest) -> concurrent.futures.Future[Outcome]:
        """Queue one object for scanning; thread-safe and non-blocking."""
        ...

    def version(self) -> str:
        """The VERSION reply text, e.g. ``endpoint-agent 0.1.0/<rules version>``; must be quick."""
        ...

    def reload(self) -> None:
        """Reload the rules (RELOAD); runs on an I/O thread and may take a while."""
        ...

    def shutdown(self) -> None:
        """Ask the agent to stop (SHUTDOWN from the socket's owner): request it and return at once.

        It must not call :meth:`ClamdServer.close` itself; the service does that from its own thread.
        """
        ...

    def stats(self) -> Mapping[str, int]:
        """Counters for the STATS reply; must be quick.

        ``threads_live``, ``threads_idle``, ``threads_max`` and ``queue`` fill clamd's lines; every
        other key gets a line of its own.
        """
        ...


class ClamdServer:
    """Listens on the configured sockets and serves clamd clients until :meth:`close`."""

    def __init__(self, settings: ClamdSettings, backend: Backend, spool_dir: Path) -> None:
        self.settings = settings
        self._backend = backend
        self._spool_dir = spool_dir
        self._listeners: list[tuple[socket.socket, bool]] = []
        self._socket_inode: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ctx: ServerContext | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._open = 0
        self._per_client: Counter[tuple[object, ...]] = Counter()
        self._waiting: Counter[tuple[object, ...]] = Counter()  # connections waiting for a slot, per client
        self._freed = asyncio.Event()  # set (and replaced) whenever a slot frees up
        self._refused = 0
        self._grace = 0.0

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def tcp_address(self) -> tuple[str, int] | None:
        """The bound TCP address, when TCP is on."""
        for sock, unix in self._listeners:
            if not unix:
                host, port = sock.getsockname()[:2]
                return str(host), int(port)
        return None

    def start(self) -> None:
        """Bind the sockets and start serving. Raises ConfigError when a socket cannot be bound."""
        if self._thread is not None:
            raise RuntimeError("the clamd server is already started")
        prepare_spool(self._spool_dir)
        try:
            self._listeners.append((self._bind_unix(), True))
            if self.settings.tcp_port:
                self._listeners.append((_bind_tcp(self.settings.tcp_host, self.settings.tcp_port), False))
        except BaseException:
            self._close_listeners()
            raise
        self._thread = threading.Thread(target=self._run, name="clamd-server")
        self._thread.start()
        self._ready.wait()
        if self._loop is None:  # the loop failed before it could serve
            self.close()
            raise RuntimeError("the clamd server failed to start")
        log.info(
            "clamd_started",
            tcp_port=self.tcp_address[1] if self.tcp_address else None,
            stream_max_length=self.settings.stream_max_length,
            max_connections=self.settings.max_connections,
        )

    def close(self, grace: float = 0.0) -> None:
        """Stop serving and remove the socket file.

        New connections are no longer accepted; connections in progress get up to ``grace`` seconds
        to finish (their scans included), then are dropped. Returns once the server thread is gone.
        """
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if threading.current_thread() is thread:
            raise RuntimeError("ClamdServer.close() called from the server's own thread")
        self._grace = grace
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        thread.join()
        self._close_listeners()
        log.info("clamd_stopped")

    def stop(self) -> None:
        """The same as :meth:`close` (for the service's start/stop components)."""
        self.close()

    def _bind_unix(self) -> socket.socket:
        path = self.settings.socket_path
        _clear_stale_socket(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(path))
            path.chmod(self.settings.socket_mode)  # before listen(): nobody can connect yet
            st = os.lstat(path)
            self._socket_inode = (st.st_dev, st.st_ino)
            sock.listen(_BACKLOG)
            sock.settimeout(0.0)  # non-blocking
        except OSError as exc:
            sock.close()
            raise ConfigError(f"clamd.socket_path: cannot listen there ({exc.strerror or exc})") from exc
        return sock

    def _close_listeners(self) -> None:
        for sock, _unix in self._listeners:
            sock.close()
        self._listeners.clear()
        if self._socket_inode is not None:
            path = self.settings.socket_path
            with contextlib.suppress(OSError):
                st = os.lstat(path)
                if (st.st_dev, st.st_ino) == self._socket_inode:
                    path.unlink()
            self._socket_inode = None

    def _run(self) -> None:
        io = concurrent.futures.ThreadPoolExecutor(_IO_THREADS, thread_name_prefix="clamd-io")
        try:
            asyncio.run(self._main(io))
        except Exception as exc:  # noqa: BLE001 - logged here: nobody joins this thread for its result
            log.error("clamd_server_failed", error=type(exc).__name__)  # noqa: TRY400 - no traceback: it could carry peer data
        finally:
            io.shutdown(wait=True, cancel_futures=True)
            self._ready.set()

    async def _main(self, io: concurrent.futures.ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        self._loop, self._stop = loop, asyncio.Event()
        budget = MemoryBudget(self.settings.memory_budget)
        self._ctx = ServerContext(self.settings, self._backend, self._spool_dir, loop, io, budget)
        accepting = [loop.create_task(self._accept(sock, unix)) for sock, unix in self._listeners]
        self._ready.set()
        await self._stop.wait()
        for task in accepting:
            task.cancel()
        await asyncio.gather(*accepting, return_exceptions=True)
        self._close_listeners()  # new clients are refused at once, not left in the backlog
        if self._tasks and self._grace > 0:
            await asyncio.wait(self._tasks, timeout=self._grace)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, listener: socket.socket, unix: bool) -> None:
        """Accept connections. The accept() itself never sits at an await, so a cancel loses no socket."""
        while True:
            try:
                sock, _address = listener.accept()
            except (BlockingIOError, InterruptedError):
                await _readable(listener)
                continue
            except OSError as exc:  # out of descriptors, say: wait a little rather than spin
                log.warning("clamd_accept_failed", error=errno.errorcode.get(exc.errno or 0, "unknown"))
                await asyncio.sleep(0.1)
                continue
            sock.settimeout(0.0)  # non-blocking
            self._admit(sock, _peer_of(sock) if unix else Peer(unix=False))

    def _admit(self, sock: socket.socket, peer: Peer) -> None:
        if self._open >= 2 * self.settings.max_connections:  # even waiting has a limit
            sock.close()
            self._note_refusal("connections_exhausted")
            return
        self._open += 1
        client = ("pid", peer.pid) if peer.unix else ("tcp",)
        task = asyncio.get_running_loop().create_task(self._serve(sock, peer, client))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    async def _serve(self, sock: socket.socket, peer: Peer, client: tuple[object, ...]) -> None:
        """Wait for a slot (or give up with an ERROR reply), serve the connection, free the slot."""
        connection = None
        served = False
        try:
            refusal = await self._slot(client)
            served = refusal is None
            ctx = self._ctx
            if ctx is None:  # not reachable: the context exists before accepting starts
                raise RuntimeError("clamd server context missing")
            connection = Connection(ctx, sock, peer, refusal)
            await connection.run()
        finally:
            if connection is None:  # cancelled while waiting: the socket was never handed over
                sock.close()
            else:
                connection.close()  # a connection cancelled early never reached its own cleanup
            if served:
                self._free(client)

    async def _slot(self, client: tuple[object, ...]) -> str | None:
        """Take a serving slot for ``client``, waiting up to ``queue_timeout`` for one to free up.

        Like clamd's queue, a connection past ``max_connections`` (or past ``max_client_connections`` of
        its own client) waits; only one still waiting after ``queue_timeout`` gets the ERROR reply. A
        client may have at most ``max_client_connections`` waiting too: past that, the ERROR comes at
        once, so that one client's connections cannot fill the queue and lock the others out.
        Returns None with the slot taken, else the refusal to answer the client's command with.
        """
        settings = self.settings
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.queue_timeout
        if self._must_wait(client) and self._waiting[client] >= settings.max_client_connections:
            self._note_refusal("max_client_connections")  # one client may not fill the queue
            return "Too many connections from this client. ERROR"
        self._waiting[client] += 1
        try:
            while self._must_wait(client):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    if self._served() >= settings.max_connections:
                        self._note_refusal("max_connections")
                        return "Too many connections. ERROR"
                    self._note_refusal("max_client_connections")
                    return "Too many connections from this client. ERROR"
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._freed.wait(), remaining)
        finally:
            self._waiting[client] -= 1
            if self._waiting[client] <= 0:
                del self._waiting[client]
        self._per_client[client] += 1
        if self._ctx is not None:
            self._ctx.connections = self._served()
        return None

    def _must_wait(self, client: tuple[object, ...]) -> bool:
        """Whether every slot is taken, or every one ``client`` may hold."""
        settings = self.settings
        return (
            self._served() >= settings.max_connections
            or self._per_client[client] >= settings.max_client_connections
        )

    def _free(self, client: tuple[object, ...]) -> None:
        self._per_client[client] -= 1
        if self._per_client[client] <= 0:
            del self._per_client[client]
        if self._ctx is not None:
            self._ctx.connections = self._served()
        freed, self._freed = self._freed, asyncio.Event()
        freed.set()  # wakes every waiter; each checks the limits again

    def _served(self) -> int:
        return sum(self._per_client.values())

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._open -= 1
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("clamd_connection_failed", error=type(error).__name__)

    def _note_refusal(self, reason: str) -> None:
        self._refused += 1
        if self._refused % _LOG_EVERY == 1:
            log.warning("clamd_connection_refused", reason=reason, refused_so_far=self._refused)


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _readable(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_reader(sock.fileno(), _set_done, ready)
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())


def _peer_of(sock: socket.socket) -> Peer:
    try:
        pid, uid, _gid = _CREDENTIALS.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDENTIALS.size)
        )
    except OSError:
        return Peer(unix=True)
    return Peer(unix=True, uid=uid, pid=pid)


def _clear_stale_socket(path: Path) -> None:
    """Remove a socket file no server listens on; refuse to touch anything else."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ConfigError("clamd.socket_path: exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)
        return
    finally:
        probe.close()
    raise ConfigError("clamd.socket_path: another server is listening there")


def _bind_tcp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(_BACKLOG)
        sock.settimeout(0.0)  # non-blocking
    except OSError as exc:
        sock.close()
        raise ConfigError(f"clamd.tcp_port: cannot listen on {host}:{port} ({exc.strerror or exc})") from exc
    return sock
