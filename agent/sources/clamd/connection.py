"""One client connection: read commands, run them, write replies, and hold the client to its limits.

Every wait has a deadline (``command_read_timeout`` for the first command, ``idle_timeout`` between
session commands when nothing is in flight, ``read_timeout`` between pieces of a stream and for each
write), so a silent client costs one socket and nothing else. Scans run as tasks, so a session's
replies go out in completion order while its next commands are read.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from agent.sources.clamd.channel import Channel
from agent.sources.clamd.context import ServerContext
from agent.sources.clamd.pathscan import PATH_COMMANDS, scan_path
from agent.sources.clamd.protocol import (
    ClamdProtocolError,
    Event,
    Parser,
    Prefix,
    Request,
    StreamChunk,
    StreamEnd,
    format_reply,
)
from agent.sources.clamd.replies import clean_text, outcome_statuses, stats_body, versioncommands
from agent.sources.clamd.spool import Held, StreamSink, read_descriptor

__all__ = ["Connection", "Peer"]

log = structlog.get_logger("endpoint-agent")
_TIMED_OUT = "COMMAND READ TIMED OUT. ERROR"
_DRAIN_MAX = 64 << 20  # after refusing a stream, read (and drop) at most this much more of it


@dataclass(frozen=True, slots=True)
class Peer:
    """Who is connected: over the Unix socket, the uid and pid from SO_PEERCRED."""

    unix: bool
    uid: int | None = None
    pid: int | None = None

    @property
    def may_shutdown(self) -> bool:
        """Only the agent's own user (or root), over the Unix socket, may stop the agent."""
        return self.unix and self.uid is not None and self.uid in {0, os.geteuid()}


class Connection:
    """Serves one accepted socket until the command (or session) is done, then closes it."""

    def __init__(self, ctx: ServerContext, sock: socket.socket, peer: Peer, refusal: str | None) -> None:
        self._ctx = ctx
        self._channel = Channel(ctx.loop, sock, unix=peer.unix)
        self._peer = peer
        self._refusal = refusal
        self._parser = Parser(stream_max_length=ctx.settings.stream_max_length)
        self._jobs: set[asyncio.Task[None]] = set()
        self._sink: StreamSink | None = None
        # Handed to a job that may be cancelled before it runs; _close() cleans up what is left.
        self._handed_sinks: set[StreamSink] = set()
        self._handed_fds: set[int] = set()
        self._stream_request: Request | None = None
        self._opened = self._last_read = self._last_activity = ctx.loop.time()
        self._closing = False
        self._drain = False

    async def run(self) -> None:
        """Serve, wait for the scans in flight, and close, whatever happens."""
        try:
            await self._serve()
            self._discard_stream()
            while self._jobs and not self._channel.broken:
                await asyncio.wait(self._jobs, return_when=asyncio.FIRST_COMPLETED)
            if self._drain and not self._channel.broken:
                settings = self._ctx.settings
                await self._channel.drain(max(settings.stream_max_length, _DRAIN_MAX), settings.read_timeout)
        finally:
            await self._close()

    async def _serve(self) -> None:
        while not (self._closing or self._channel.broken):
            try:
                event = self._parser.next_event()
            except ClamdProtocolError as exc:
                await self._protocol_error(exc)
                return
            if event is not None:
                await self._handle(event)
                continue
            if self._parser.done:
                return
            if self._channel.fds and not self._parser.awaiting_descriptor:
                await self._protocol_error(_stray_descriptor(self._parser))
                return
            await self._backpressure()
            data = await self._receive()
            if not data:  # the client closed, or timed out (already answered)
                return
            self._parser.receive(data)

    async def _protocol_error(self, exc: ClamdProtocolError) -> None:
        log.info("clamd_protocol_error", reason=exc.reason)
        await self._send(exc.reply)
        self._drain = exc.reason == "stream_too_large"  # let the client finish sending and read the reply

    async def _handle(self, event: Event) -> None:
        if isinstance(event, Request) and self._refusal is not None:
            await self._send(event.reply(self._refusal))  # a refused client's first event is a request
            self._closing = True
            self._drain = event.command == "INSTREAM"
        elif isinstance(event, StreamChunk):
            await self._stream_chunk(event.data)
        elif isinstance(event, StreamEnd):
            self._stream_end()
        else:
            self._last_activity = self._ctx.loop.time()
            await self._command(event)

    async def _command(self, request: Request) -> None:
        name = request.command
        if name in PATH_COMMANDS:
            self._start(self._path_command(request))
        elif name == "INSTREAM":
            self._sink = StreamSink(self._ctx.spool_dir, self._ctx.settings.in_memory_max, self._ctx.budget)
            self._stream_request = request
        elif name == "FILDES":
            await self._fildes(request)
        elif name in {"PING", "VERSION", "VERSIONCOMMANDS", "STATS", "RELOAD"}:
            try:
                text = self._answer(name)
            except Exception as exc:  # noqa: BLE001 - a failing backend answer is an ERROR reply, not a crash
                log.error("clamd_command_failed", command=name, error=type(exc).__name__)  # noqa: TRY400 - no traceback: it could carry peer data
                text = f"{name} failed. ERROR"
            await self._reply(request, [text])
            if name == "RELOAD":
                log.info("clamd_reload_requested")
                self._ctx.reload()
        elif name in {"SHUTDOWN", "QUIT"}:
            await self._shutdown(request)
        # END and DETSTATS/DETSTATSCLEAR: no reply, the parser is done and the connection closes

    def _answer(self, name: str) -> str:
        backend = self._ctx.backend
        if name == "PING":
            return "PONG"
        if name == "VERSION":
            return clean_text(backend.version())
        if name == "VERSIONCOMMANDS":
            return versioncommands(backend.version())
        if name == "STATS":
            settings = self._ctx.settings
            return stats_body(
                backend.stats(), connections=self._ctx.connections, idle_timeout=settings.idle_timeout
            )
        return "RELOADING"

    async def _shutdown(self, request: Request) -> None:
        if not self._peer.may_shutdown:
            log.warning("clamd_shutdown_refused", transport="unix" if self._peer.unix else "tcp")
            await self._reply(request, ["SHUTDOWN not permitted for this client. ERROR"])
            return
        log.info("clamd_shutdown_requested")
        try:
            self._ctx.backend.shutdown()  # clamd sends no reply
        except Exception as exc:  # noqa: BLE001 - the backend's failure must not take the server down
            log.error("clamd_command_failed", command="SHUTDOWN", error=type(exc).__name__)  # noqa: TRY400 - no traceback: it could carry peer data

    async def _path_command(self, request: Request) -> None:
        async def emit(lines: Sequence[str]) -> bool:
            if request.prefix is not Prefix.Z:  # a file name with a newline must not split the line
                lines = [line.replace("\n", "?") for line in lines]
            return await self._reply(request, lines)

        await scan_path(self._ctx, request.command, request.argument or "", emit)

    async def _stream_chunk(self, data: bytes) -> None:
        sink = self._sink
        if sink is not None and sink.add(data):
            await self._ctx.run(sink.spill)

    def _discard_stream(self) -> None:
        """Drop a stream that will never end (error, disconnect, close): its spool file goes now."""
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.discard()

    def _stream_end(self) -> None:
        sink, self._sink = self._sink, None
        if sink is not None and self._stream_request is not None:
            self._handed_sinks.add(sink)
            self._start(self._scan_stream(self._stream_request, sink))

    async def _scan_stream(self, request: Request, sink: StreamSink) -> None:
        try:
            if sink.spooled:
                await self._ctx.run(sink.spill)  # if cancelled here, close() discards the sink
            held = sink.finish()
        except OSError as exc:
            self._handed_sinks.discard(sink)
            sink.discard()
            log.warning("clamd_spool_failed", error=exc.strerror or type(exc).__name__)
            await self._reply(request, ["stream: Error writing to temporary file. ERROR"])
            return
        self._handed_sinks.discard(sink)  # the held request owns the content now
        await self._scan_held(request, "stream", held)

    async def _fildes(self, request: Request) -> None:
        if not self._channel.fds:
            self._closing = True
            await self._reply(request, ["No file descriptor received. ERROR"])
            return
        fd = self._channel.fds.pop(0)
        self._handed_fds.add(fd)
        self._start(self._scan_descriptor(request, fd))

    async def _scan_descriptor(self, request: Request, fd: int) -> None:
        label = f"fd[{fd}]"
        settings = self._ctx.settings
        read = functools.partial(
            read_descriptor,
            fd,
            spool_dir=self._ctx.spool_dir,
            in_memory_max=settings.in_memory_max,
            limit=settings.stream_max_length,
            budget=self._ctx.budget,
            display=label,
        )
        try:
            held = await self._ctx.run(read, discard=_release_held)
        finally:
            self._handed_fds.discard(fd)
            os.close(fd)
        if isinstance(held, str):
            await self._reply(request, [f"{label}: {held}"])
        else:
            await self._scan_held(request, label, held)

    async def _scan_held(self, request: Request, label: str, held: Held) -> None:
        outcome = await self._ctx.outcome(held.take(), held.release)
        statuses = outcome_statuses(outcome)[0] if outcome is not None else ("Scan failed ERROR",)
        await self._reply(request, [f"{label}: {statuses[0]}"])

    def _start(self, job: Coroutine[Any, Any, None]) -> None:
        task = self._ctx.loop.create_task(job)
        self._jobs.add(task)
        task.add_done_callback(self._job_done)

    def _job_done(self, task: asyncio.Task[None]) -> None:
        self._jobs.discard(task)
        self._last_activity = self._ctx.loop.time()
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("clamd_command_failed", error=type(error).__name__)
            self._channel.broken = True
        self._channel.wake()

    async def _backpressure(self) -> None:
        while len(self._jobs) >= self._ctx.settings.max_session_pending:
            await asyncio.wait(self._jobs, return_when=asyncio.FIRST_COMPLETED)

    async def _reply(self, request: Request, lines: Sequence[str]) -> bool:
        return await self._send(b"".join(request.reply(line) for line in lines))

    async def _send(self, data: bytes) -> bool:
        """Write ``data`` whole, within ``read_timeout``; False once the client is gone."""
        if not await self._channel.send(data, self._ctx.settings.read_timeout):
            return False
        self._last_activity = self._ctx.loop.time()
        return True

    async def _receive(self) -> bytes:
        """The next packet; empty at end of input or after a timeout (which is answered here)."""
        while True:
            try:
                data = self._channel.read_once()
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                return b""
            else:
                self._last_read = self._ctx.loop.time()
                return data
            if self._channel.broken or self._closing:
                return b""
            timeout = self._timeout()
            if timeout is not None and timeout <= 0:
                await self._timed_out()
                return b""
            await self._channel.readable(timeout)

    def _timeout(self) -> float | None:
        """Seconds left to wait for input; None while a session has scans in flight."""
        settings, now = self._ctx.settings, self._ctx.loop.time()
        if self._parser.in_stream:
            return self._last_read + settings.read_timeout - now
        if not self._parser.in_session:
            return self._opened + settings.command_read_timeout - now
        if self._jobs:
            return None
        return self._last_activity + settings.idle_timeout - now

    async def _timed_out(self) -> None:
        current = self._parser.current
        log.info("clamd_client_timed_out", streaming=self._parser.in_stream)
        reply = (
            current.reply(_TIMED_OUT) if current else format_reply(_TIMED_OUT, 0, self._parser.reply_prefix)
        )
        await self._send(reply)

    async def _close(self) -> None:
        for task in self._jobs:
            task.cancel()
        if self._jobs:
            await asyncio.wait(self._jobs)
        self.close()

    def close(self) -> None:
        """Release everything this connection holds; safe to call again (jobs must be done)."""
        self._discard_stream()
        for sink in self._handed_sinks:
            sink.discard()
        for fd in self._handed_fds:
            os.close(fd)
        self._handed_sinks.clear()
        self._handed_fds.clear()
        self._channel.close()


def _release_held(result: Held | str) -> None:
    if isinstance(result, Held):
        result.release()


def _stray_descriptor(parser: Parser) -> ClamdProtocolError:
    text = "PROTOCOL ERROR: ancillary data sent without FILDES. ERROR"
    return ClamdProtocolError("stray_descriptor", format_reply(text, 0, parser.reply_prefix))
