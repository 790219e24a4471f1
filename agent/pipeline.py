"""What the product does to one object, in one function: :func:`run_item`.

open the file safely → scan it (hashes, rules, archive members) → classify it (kind, personal data)
→ decide the verdict → minimize it into what may leave the device.

``run_item`` runs inside a scan worker process (see :mod:`agent.engine.pool` and
:mod:`agent.worker`); :func:`setup` builds the worker's engine once. Everything that needs the
parent (the cache, the outbox, output) happens in :mod:`agent.session` with the
:class:`~agent.model.Outcome` this returns.
"""

from __future__ import annotations

import errno
import functools
import os
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import msgspec

from agent.classify import Classifier, ExtractLimits
from agent.engine import Engine, LimitExceeded, limit_detection
from agent.errors import ScanError
from agent.minimize import decide, minimize
from agent.model import Detection, Outcome, ScanRequest, ScanResult, StatKey
from agent.worker import WorkerContext

__all__ = ["describe_os_error", "open_regular", "run_item", "setup"]

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def setup(ctx: WorkerContext) -> Callable[[ScanRequest], Outcome]:
    """Build this worker's engine (its own YARA-X scanner) and return the item handler."""
    engine = Engine(ctx.rules, ctx.limits)
    return functools.partial(run_item, engine=engine, ctx=ctx)


def run_item(request: ScanRequest, *, engine: Engine, ctx: WorkerContext) -> Outcome:
    """Scan, classify, decide and minimize one object. Never raises for a bad object."""
    started = time.monotonic()
    classifier = Classifier(ctx.policy.personal_kinds, ExtractLimits(max_chars=ctx.limits.max_extract_chars))
    result: ScanResult | None = None
    error = ""
    opened: StatKey | None = None
    try:
        if request.data is not None:
            result, classifier = _scan_stream(engine, request.data, request.path, ctx)
        else:
            with open_regular(request.path) as (fd, st):
                opened = StatKey.of(st)
                result = _scan(engine, fd, st.st_size, request, classifier)
    except ScanError as exc:
        error = str(exc)
    except OSError as exc:
        error = describe_os_error(exc)
    classification = classifier.result() if result is not None else None
    verdict = decide(result, ctx.policy, error)
    record = minimize(verdict, classification, result, policy=ctx.policy, identity=ctx.identity)
    if request.data is not None:  # the bytes stay here: the outcome goes back without them
        request = msgspec.structs.replace(request, data=None)
    return Outcome(
        request=request if opened is None else _with_stat(request, opened),
        verdict=verdict,
        result=result,
        classification=classification,
        record=record,
        duration=time.monotonic() - started,
    )


def _scan(engine: Engine, fd: int, size: int, request: ScanRequest, classifier: Classifier) -> ScanResult:
    name = os.path.basename(request.path)
    try:
        return engine.scan_fd(fd, size, name, classifier.visit)
    except LimitExceeded as exc:  # the object as a whole is over a limit: look at its head only
        classifier.visit(os.pread(fd, 8192, 0), name, 0)
        detection: Detection = limit_detection(exc.which)
        return ScanResult(size=size, sha256=None, detections=(detection,))


def _scan_stream(engine: Engine, data: bytes, name: str, ctx: WorkerContext) -> tuple[ScanResult, Classifier]:
    """Scan a stream held in memory; look for personal data only when a record may leave.

    A stream is never shown to anyone and never cached: its classification matters only for what
    may leave the device, and for a clean stream nothing does. So the first pass sniffs kinds only,
    and a stream with a detection (or a limit) is scanned again with the detectors on, which gives
    exactly the record a full first pass would have given.
    """
    limits = ExtractLimits(max_chars=ctx.limits.max_extract_chars)
    quick = Classifier(ctx.policy.personal_kinds, limits, detect=False)
    result = _scan_data(engine, data, name, quick)
    if not result.detections:
        return result, quick
    full = Classifier(ctx.policy.personal_kinds, limits)
    return _scan_data(engine, data, name, full), full


def _scan_data(engine: Engine, data: bytes, name: str, classifier: Classifier) -> ScanResult:
    try:
        return engine.scan_bytes(data, name, classifier.visit)
    except LimitExceeded as exc:
        classifier.visit(data[:8192], name, 0)
        return ScanResult(size=len(data), sha256=None, detections=(limit_detection(exc.which),))


@contextmanager
def open_regular(path: str) -> Iterator[tuple[int, os.stat_result]]:
    """Open ``path`` for reading without following a final symlink or blocking on a FIFO.

    Raises ScanError for anything that is not a regular file, so devices, sockets and FIFOs are
    never read. Tries ``O_NOATIME`` first, so scanning does not touch access times where allowed.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS | getattr(os, "O_NOATIME", 0))
    except PermissionError:
        fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ScanError("not a regular file")
        os.set_blocking(fd, True)
        yield fd, st
    finally:
        os.close(fd)


def describe_os_error(exc: OSError) -> str:
    """A short reason for an OS error, without the path."""
    if exc.errno == errno.ELOOP:
        return "is a symbolic link"
    if exc.errno == errno.ENOENT:
        return "vanished before it could be scanned"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return (exc.strerror or type(exc).__name__).lower()


def _with_stat(request: ScanRequest, key: StatKey) -> ScanRequest:
    if request.stat == key:
        return request
    return msgspec.structs.replace(request, stat=key)  # every other field kept (``act`` above all)
