"""Worker setups for the pool tests: importable by spawned workers, so they live in a module."""

from __future__ import annotations

import os
import signal
import time


def setup_echo(payload: object):
    """A handler that echoes, crashes on 'crash', hangs on 'hang', and raises on 'raise'."""

    def handle(item: str) -> str:
        if item == "crash":
            os.kill(os.getpid(), signal.SIGKILL)
        if item == "hang":
            time.sleep(3600)
        if item == "exit":
            os._exit(3)
        return f"{payload}:{item}"

    return handle


def setup_broken(payload: object):
    """A worker whose setup dies, as with a damaged rules blob."""
    os._exit(7)


def setup_pid(payload: object):
    """A handler that answers with its worker's pid, after a short pause."""

    def handle(item: str) -> int:
        time.sleep(0.2)
        return os.getpid()

    return handle


def setup_balloon(payload: object):
    """A handler that holds ~200 MB on 'balloon' (and on 'once:<file>' until that file exists)."""

    def handle(item: str) -> str:
        if item == "balloon" or (item.startswith("once:") and not os.path.exists(item[5:])):
            if item.startswith("once:"):
                open(item[5:], "w").close()
            ballast = bytearray(200 << 20)
            ballast[::4096] = b"x" * len(ballast[::4096])
            time.sleep(30)
        return f"ok:{item}"

    return handle


def setup_interval(payload: object):
    """A handler that works 0.5 s on items starting with 'big' (0.01 s on others); answers when."""

    def handle(item: str) -> tuple[float, float]:
        started = time.monotonic()
        time.sleep(0.5 if item.startswith("big") else 0.01)
        return started, time.monotonic()

    return handle
