"""One client socket, non-blocking: reads that collect passed descriptors, whole writes with a deadline."""

from __future__ import annotations

import array
import asyncio
import contextlib
import os
import socket

__all__ = ["Channel"]

_RECV_SIZE = 256 * 1024
_ANCILLARY = socket.CMSG_SPACE(4 * array.array("i").itemsize)  # room for 4 descriptors; more are dropped


class Channel:
    """The socket of one connection, driven from the server's event loop.

    Descriptors received over a Unix socket (SCM_RIGHTS) collect in :attr:`fds`; whoever takes one
    closes it, and :meth:`close` closes the rest. Once a write fails or times out the channel is
    :attr:`broken` and later writes are dropped.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, *, unix: bool) -> None:
        self._loop = loop
        self._sock = sock
        self._unix = unix
        self._lock = asyncio.Lock()
        self._wake: asyncio.Future[None] | None = None
        self.fds: list[int] = []
        self.broken = False

    def read_once(self) -> bytes:
        """One non-blocking read (BlockingIOError when nothing is there); empty at end of input."""
        if not self._unix:
            return self._sock.recv(_RECV_SIZE)
        data, ancillary, _flags, _addr = self._sock.recvmsg(_RECV_SIZE, _ANCILLARY, socket.MSG_CMSG_CLOEXEC)
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                self.fds.extend(fds)
        return data

    async def readable(self, limit: float | None) -> bool:
        """Wait until the socket is readable or :meth:`wake` is called (True), or ``limit`` passes."""
        wake: asyncio.Future[None] = self._loop.create_future()
        self._wake = wake
        self._loop.add_reader(self._sock.fileno(), _resolve, wake)
        try:
            async with asyncio.timeout(limit):
                await wake
        except TimeoutError:
            return False
        finally:
            self._loop.remove_reader(self._sock.fileno())
            self._wake = None
        return True

    def wake(self) -> None:
        """End a :meth:`readable` wait early (something else changed)."""
        if self._wake is not None:
            _resolve(self._wake)

    async def send(self, data: bytes, limit: float) -> bool:
        """Write ``data`` whole within ``limit`` seconds; False once the client is gone."""
        async with self._lock:
            if self.broken:
                return False
            try:
                async with asyncio.timeout(limit):
                    await self._loop.sock_sendall(self._sock, data)
            except (OSError, TimeoutError):
                self.broken = True
                self.wake()
                return False
        return True

    async def drain(self, budget: int, gap: float) -> None:
        """Stop writing, then read and drop up to ``budget`` bytes, so the client can read our reply.

        A client still sending a refused stream would otherwise see its connection reset before it
        gets to the reply. Ends at end of input, after ``budget`` bytes, or when ``gap`` passes idle.
        """
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)
        while budget > 0:
            try:
                data = self._sock.recv(_RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                if not await self.readable(gap):
                    return
                continue
            except OSError:
                return
            if not data:
                return
            budget -= len(data)

    def close(self) -> None:
        """Close the socket and every received descriptor no one took; safe to call again."""
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()
        self._sock.close()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
