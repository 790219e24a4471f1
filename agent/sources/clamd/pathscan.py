"""SCAN, CONTSCAN, MULTISCAN and ALLMATCHSCAN of a path, with clamd's reply rules.

- The path must be absolute and exist, else ``<path>: File path check failure: <reason>. ERROR``.
- A directory is walked with :class:`agent.sources.Walker` (no symlinks inside the tree).
- Each infected file gets ``<file>: <Name> FOUND`` (ALLMATCHSCAN: a line per detection), each
  failed one ``<file>: <reason> ERROR``; clean files get no line.
- SCAN and ALLMATCHSCAN stop at the first infected file; CONTSCAN goes on, in walk order;
  MULTISCAN scans several files at once and answers in completion order.
- The last line is ``<path>: OK`` when nothing was found and not everything failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import itertools
import os
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field

import msgspec

from agent.model import ScanRequest, Source
from agent.sources.clamd.context import ServerContext
from agent.sources.clamd.replies import Tally, clean_text, outcome_statuses
from agent.sources.walk import Walker, WalkError

__all__ = ["PATH_COMMANDS", "scan_path"]

Emit = Callable[[Sequence[str]], Awaitable[bool]]
"""Sends reply lines; False once the client is gone."""

# How many files of one command are in flight at once.
PATH_COMMANDS = {"SCAN": 1, "ALLMATCHSCAN": 1, "CONTSCAN": 4, "MULTISCAN": 16}
_WALK_BATCH = 64


@dataclass(frozen=True, slots=True)
class _Result:
    lines: tuple[str, ...]
    kind: str


def path_check(path: str) -> str | None:
    """Why ``path`` cannot be scanned (clamd's wording), or None (blocking)."""
    if not os.path.isabs(path):  # noqa: PTH117 - str paths from the wire; no Path objects
        return os.strerror(errno.ENOENT)
    try:
        os.stat(path)
    except OSError as exc:
        return exc.strerror or os.strerror(errno.ENOENT)
    except ValueError:
        return os.strerror(errno.ENOENT)
    return None


def _take(items: Iterator[ScanRequest | WalkError], count: int) -> list[ScanRequest | WalkError]:
    return list(itertools.islice(items, count))


async def scan_path(ctx: ServerContext, command: str, path: str, emit: Emit) -> None:
    """Answer one path command through ``emit``."""
    failure = await ctx.run(functools.partial(path_check, path))
    if failure is not None:
        await emit([f"{path}: File path check failure: {failure}. ERROR"])
        return
    tally = Tally()
    if await _walk_and_scan(ctx, command, path, tally, emit) and tally.all_clear:
        await emit([f"{path}: OK"])


async def _walk_and_scan(ctx: ServerContext, command: str, path: str, tally: Tally, emit: Emit) -> bool:
    """Scan every file under ``path``; False if the client went away."""
    scan = _Run(
        emit=emit,
        tally=tally,
        ordered=command != "MULTISCAN",
        stop_at_first=command in {"SCAN", "ALLMATCHSCAN"},
    )
    window = PATH_COMMANDS[command]
    items = Walker(source=Source.ON_DEMAND).walk([path])
    try:
        while batch := await ctx.run(functools.partial(_take, items, _WALK_BATCH)):
            for item in batch:
                scan.inflight.append(_start(ctx, item, allmatch=command == "ALLMATCHSCAN"))
                if (finished := await scan.settle(window - 1)) is not None:
                    return finished
        finished = await scan.settle(0)
        return True if finished is None else finished
    finally:
        await scan.cancel()


@dataclass(slots=True)
class _Run:
    """The files of one command in flight, and how their results are reported."""

    emit: Emit
    tally: Tally
    ordered: bool
    stop_at_first: bool
    inflight: deque[asyncio.Future[_Result]] = field(default_factory=deque)

    async def settle(self, keep: int) -> bool | None:
        """Report results until at most ``keep`` are in flight; a bool when the command is over."""
        while len(self.inflight) > keep:
            result = await self._next()
            self.tally.add(result.kind)
            if result.lines and not await self.emit(result.lines):
                return False
            if self.stop_at_first and result.kind == "infected":
                return True
        return None

    async def _next(self) -> _Result:
        if self.ordered:
            return await self.inflight.popleft()
        done, _pending = await asyncio.wait(self.inflight, return_when=asyncio.FIRST_COMPLETED)
        first = next(iter(done))
        self.inflight.remove(first)
        return first.result()

    async def cancel(self) -> None:
        """Stop what is still in flight (an early stop, or the client went away)."""
        for future in self.inflight:
            future.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self.inflight, return_exceptions=True)
        self.inflight.clear()


def _start(ctx: ServerContext, item: ScanRequest | WalkError, allmatch: bool) -> asyncio.Future[_Result]:
    if isinstance(item, WalkError):
        future: asyncio.Future[_Result] = ctx.loop.create_future()
        future.set_result(_Result((f"{item.path}: {clean_text(item.reason)} ERROR",), "error"))
        return future
    return ctx.loop.create_task(_scan_file(ctx, item, allmatch))


async def _scan_file(ctx: ServerContext, request: ScanRequest, allmatch: bool) -> _Result:
    label = request.display or request.path  # a link named in the command: the name given
    # clamd never changes the files it is asked about: the policy's [actions] are not applied here
    outcome = await ctx.outcome(msgspec.structs.replace(request, act=False))
    if outcome is None:
        return _Result((f"{label}: Scan failed ERROR",), "error")
    statuses, kind = outcome_statuses(outcome, allmatch=allmatch)
    return _Result(tuple(f"{label}: {status}" for status in statuses) if kind != "ok" else (), kind)
