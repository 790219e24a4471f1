"""A scan session in the parent process: rules, workers, verdict cache, outbox.

:class:`ScanSession` loads everything once, then turns a stream of requests into a stream of
outcomes. Unchanged files are answered from the verdict cache; the rest go to the worker pool, where
:func:`agent.pipeline.run_item` does the work. Verdicts and the records they produced are persisted
in batches, each batch in one transaction.
"""

from __future__ import annotations

import datetime as dt
import functools
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import msgspec
import structlog

from agent import logs
from agent.config import Config
from agent.engine import (
    ENGINE_VERSION,
    IDLE,
    Failure,
    RulesCache,
    RuleSet,
    WorkerPool,
    limit_detection,
    load_rules,
)
from agent.governance import EgressGate, History, HistoryRow, Quarantine, QuarantineAction, worth_keeping
from agent.governance.analytics import Analytics
from agent.governance.vault import DataKey, UnsealError
from agent.minimize import Identity, MasterSecret, Policy, decide, minimize, period_label
from agent.minimize.wire import Record
from agent.model import (
    Classification,
    DataClass,
    Detection,
    Outcome,
    ScanRequest,
    ScanResult,
    StatKey,
    Verdict,
    VerdictKind,
)
from agent.outbox import Store
from agent.sources import WalkError
from agent.worker import WorkerContext, setup

__all__ = ["ScanSession", "SessionOptions", "rules_cache"]

_CACHE_FORMAT = "v3"  # bump when the cached value's shape changes
_SEALED = b"\x00sealed:"  # never starts a msgpack array: marks a value sealed with the data key
_PERSIST_EVERY = 512
_LOOKUP_EVERY = 256
_FLUSH_IDLE = 1.0  # seconds a verdict may wait in memory while a streaming source is idle
_GRACE = 5.0  # seconds past max_scan_time before the parent kills a worker
_TRANSIENT_LIMITS = frozenset({"Limits.Exceeded.MaxScanTime", "Limits.Exceeded.MaxMemory"})
log = structlog.get_logger("endpoint-agent")


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """Per-run overrides of the configuration (from the command line)."""

    rules_dir: Path | None = None
    jobs: int | None = None
    use_cache: bool = True
    rules: RuleSet | None = None  # already loaded (a service reload builds them to the side)
    reputation: Callable[[str], str | None] | None = None  # sha256 -> known-bad name (private lookup)


@dataclass(slots=True)
class _Pending:
    verdicts: list[tuple[StatKey, bytes]] = field(default_factory=list)
    records: list[Any] = field(default_factory=list)
    history: list[HistoryRow] = field(default_factory=list)

    def size(self) -> int:
        """Rows waiting to be written."""
        return len(self.verdicts) + len(self.records) + len(self.history)


class ScanSession:
    """Scans requests with one set of rules, a worker pool and the local store."""

    def __init__(self, config: Config, options: SessionOptions | None = None) -> None:
        opts = options or SessionOptions()
        self.config = config
        self.scan_id = uuid.uuid4().hex[:12]
        self.policy = Policy.load(config.policy_path)
        secret = MasterSecret.load_or_create(config.state_dir)
        self.rules: RuleSet = opts.rules or load_rules(
            opts.rules_dir or config.rules_dir, rules_cache(config, secret)
        )
        self.identity = Identity(
            pseudonym=secret.pseudonym(
                "verdicts", period_label(dt.datetime.now(dt.UTC), config.privacy.pseudonym_period)
            ),
            engine_version=ENGINE_VERSION,
            rules_version=self.rules.version,
        )
        self._use_cache = opts.use_cache and config.scan.cache
        self._reputation = opts.reputation
        fingerprint = (
            f"{_CACHE_FORMAT}|{self.rules.version}|{config.limits.fingerprint()}|policy{self.policy.version}"
        )
        self.store = Store(config.state_dir / "agent.db", ruleset=fingerprint)
        self._gate = EgressGate.open(config)  # records of a purpose whose basis does not hold are not queued
        self._key = DataKey.load_or_create(config.state_dir)  # seals what names local things
        self._history = History.open(config, self._key)  # what was found where, paths sealed
        self.analytics = Analytics.open(config.state_dir)  # daily counters; sent only with consent
        self._quarantine = (
            QuarantineAction(Quarantine.open(config, key=self._key), self.policy.actions)
            if "quarantine" in self.policy.actions.values()
            else None
        )
        self._jobs = opts.jobs or config.jobs
        self._ctx = WorkerContext(self.rules, config.limits, self.policy, self.identity, config.sandbox)
        self._pool: WorkerPool[ScanRequest, Outcome] | None = None
        self._pending = _Pending()
        self._flushed = time.monotonic()

    def __enter__(self) -> Self:
        structlog.contextvars.bind_contextvars(scan_id=self.scan_id)
        log.info(
            "scan_started",
            rules_version=self.rules.version,
            yara_rules=self.rules.yara_rules,
            hash_signatures=len(self.rules.hashes),
            jobs=self._jobs,
            limits=self.config.limits.describe(),
        )
        self._pool = WorkerPool(
            self._jobs,
            setup,
            self._ctx,
            self.config.limits.max_scan_time + _GRACE,
            weight=functools.partial(_request_weight, max_file_size=self.config.limits.max_file_size),
            # A worker holds the file it scans in memory or mapped: with the default 128 MiB two 64 MiB
            # files go out together, two of 100 MiB one after the other.
            max_inflight=self.config.scan.inflight_bytes,
            max_rss=self.config.service.worker_max_rss,
            retire_after=self.config.service.worker_idle_retire,
        )
        self._pool.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._flush()
        if self._pool is not None:
            self._pool.close()
        self._gate.close()
        self._history.close()
        self.analytics.close()
        if self._quarantine is not None:
            self._quarantine.quarantine.close()
        self.store.close()
        structlog.contextvars.unbind_contextvars("scan_id")

    def scan(self, requests: Iterable[ScanRequest | WalkError]) -> Iterator[Outcome]:
        """Yield an outcome for every request, from the cache where possible, else from a worker."""
        for _request, outcome in self.stream(requests):
            yield outcome

    def stream(
        self,
        requests: Iterable[ScanRequest | WalkError],
        wakeup: socket.socket | None = None,
        aborted: Callable[[], bool] | None = None,
    ) -> Iterator[tuple[ScanRequest, Outcome]]:
        """Yield ``(request, outcome)`` for every request, where ``request`` is the object passed in.

        ``requests`` may be a streaming source that yields :data:`~agent.engine.IDLE` (see
        :meth:`WorkerPool.map_unordered`); on each idle moment, cache hits are answered and pending
        rows are written once they are a second old, so a quiet service keeps its store current.
        """
        if self._pool is None:
            raise RuntimeError("use ScanSession as a context manager")
        ready: deque[tuple[ScanRequest, Outcome]] = deque()
        misses = self._misses(requests, ready)
        for pair in self._pool.map_unordered(misses, wakeup, aborted):
            while ready:
                request, outcome = ready.popleft()
                yield request, self._finish(outcome)
            if pair is IDLE:
                if time.monotonic() - self._flushed > _FLUSH_IDLE:
                    self._flush()
                continue
            request, result = pair
            outcome = result if isinstance(result, Outcome) else self._failed(request, result)
            yield request, self._finish(outcome)
        while ready:
            request, outcome = ready.popleft()
            yield request, self._finish(outcome)
        self._flush()

    def queued(self) -> int:
        """Records waiting in the outbox, after flushing this scan's."""
        self._flush()
        return self.store.outbox_depth()

    def _misses(
        self, requests: Iterable[ScanRequest | WalkError], ready: deque[tuple[ScanRequest, Outcome]]
    ) -> Iterator[ScanRequest]:
        """Answer walk errors and cache hits into ``ready``; yield the requests that need a scan."""
        batch: list[ScanRequest] = []
        for item in requests:
            if item is IDLE:  # a streaming source has nothing right now: answer what we hold
                yield from self._split(batch, ready)
                batch = []
                yield item
                continue
            if isinstance(item, WalkError):
                request = ScanRequest(path=item.path)
                ready.append((request, _error_outcome(request, item.reason)))
                continue
            batch.append(item)
            if len(batch) >= _LOOKUP_EVERY:
                yield from self._split(batch, ready)
                batch = []
        yield from self._split(batch, ready)

    def _split(
        self, batch: list[ScanRequest], ready: deque[tuple[ScanRequest, Outcome]]
    ) -> Iterator[ScanRequest]:
        hits: dict[StatKey, bytes] = {}
        if self._use_cache:
            hits = self.store.lookup([r.stat for r in batch if r.stat is not None])
        for request in batch:
            cached = hits.get(request.stat) if request.stat is not None else None
            outcome = self._from_cache(request, cached) if cached is not None else None
            if outcome is None:
                yield request
            else:
                ready.append((request, outcome))

    def _failed(self, request: ScanRequest, failure: Failure) -> Outcome:
        if failure.kind == "aborted":
            verdict = Verdict(VerdictKind.UNSCANNED, reason=failure.detail)
            return Outcome(request, verdict, None, None, None, 0.0)
        limit = {"timeout": "MaxScanTime", "memory": "MaxMemory"}.get(failure.kind)
        if limit is not None:
            result = ScanResult(size=0, sha256=None, detections=(limit_detection(limit),))
            verdict = decide(result, self.policy)
            classification = Classification("other", "unknown", DataClass.PERSONAL)
            record = minimize(verdict, classification, result, policy=self.policy, identity=self.identity)
            return Outcome(request, verdict, result, classification, record, 0.0)
        return _error_outcome(request, failure.detail)

    def _finish(self, outcome: Outcome) -> Outcome:
        final = self._with_reputation(outcome)
        _log_outcome(final)
        self.analytics.count(final)
        if self._quarantine is not None:
            final = self._quarantine(final)
        if worth_keeping(final):
            self._pending.history.append(HistoryRow.from_outcome(final))
        if not outcome.cached:
            self._remember(outcome, final.record)
        elif final is not outcome and final.record is not None:  # the cloud knows it bad since: report it
            self._pending.records.append(final.record)
        return final

    def _with_reputation(self, outcome: Outcome) -> Outcome:
        """Add the cloud's verdict for a known-bad hash (asked only on a local prefix hit)."""
        result = outcome.result
        if self._reputation is None or result is None or result.sha256 is None:
            return outcome
        if outcome.verdict.kind is VerdictKind.MALICIOUS:
            return outcome
        name = self._reputation(result.sha256)
        if name is None:
            return outcome
        found = Detection(name=name, source="reputation", severity="high")
        result = msgspec.structs.replace(result, detections=(*result.detections, found))
        verdict = decide(result, self.policy)
        record = minimize(verdict, outcome.classification, result, policy=self.policy, identity=self.identity)
        return msgspec.structs.replace(outcome, verdict=verdict, result=result, record=record)

    def _remember(self, outcome: Outcome, record: Record | None) -> None:
        """Queue the record; cache the verdict as the rules gave it (reputation is asked afresh)."""
        if record is not None:
            self._pending.records.append(record)
        stat = outcome.request.stat
        if self._use_cache and stat is not None and _cacheable(outcome):
            self._pending.verdicts.append((stat, self._cache_value(outcome, stat)))
        if self._pending.size() >= _PERSIST_EVERY:
            self._flush()

    def _cache_value(self, outcome: Outcome, stat: StatKey) -> bytes:
        """The cached form of an outcome; sealed with the data key when it names archive members."""
        value = _CACHE_ENCODER.encode(_CacheEntry(outcome.verdict, outcome.result, outcome.classification))
        if any(d.member is not None for d in _detections(outcome)):
            return _SEALED + self._key.seal(value, _cache_aad(stat))
        return value

    def _from_cache(self, request: ScanRequest, cached: bytes) -> Outcome | None:
        """The outcome kept for ``request``; None (scan it again) when it cannot be opened."""
        if cached.startswith(_SEALED):
            assert request.stat is not None  # noqa: S101 - only stat-keyed requests reach the cache
            try:
                cached = self._key.open(cached[len(_SEALED) :], _cache_aad(request.stat))
            except UnsealError:  # the data key was shredded (forget) or replaced
                return None
        try:
            entry = _CACHE_DECODER.decode(cached)
        except msgspec.DecodeError:  # a damaged row costs a scan, never a verdict
            return None
        return Outcome(request, entry.verdict, entry.result, entry.classification, None, 0.0, cached=True)

    def _flush(self) -> None:
        self._flushed = time.monotonic()
        self.analytics.flush()
        if self._pending.size():
            self.store.persist(self._pending.verdicts, self._gate.filter(self._pending.records))
            self._history.record(self._pending.history)
            self._pending = _Pending()


def rules_cache(config: Config, secret: MasterSecret | None = None) -> RulesCache:
    """Where this install keeps compiled rules, with the key (from the master secret) that signs them."""
    secret = secret or MasterSecret.load_or_create(config.state_dir)
    return RulesCache(config.state_dir / "compiled", secret.key("compiled-rules"))


def _request_weight(request: ScanRequest, max_file_size: int) -> int:
    """The bytes a worker holds for ``request``: a file over ``max_file_size`` is only peeked at."""
    if request.data is not None:
        return len(request.data)
    size = request.stat.size if request.stat is not None else 0
    return size if size <= max_file_size else 0


def _cacheable(outcome: Outcome) -> bool:
    """Whether to remember this verdict.

    Errors and timeouts may be transient (a locked file, a busy machine), so those are scanned again.
    Detections inside archives name a member path: those are kept sealed with the data key (see
    :meth:`ScanSession._cache_value`), like every other name the store holds.
    """
    if outcome.verdict.kind is VerdictKind.ERROR:
        return False
    return all(d.name not in _TRANSIENT_LIMITS for d in outcome.verdict.detections)


def _detections(outcome: Outcome) -> Iterator[Detection]:
    yield from outcome.verdict.detections
    if outcome.result is not None:
        yield from outcome.result.detections


def _cache_aad(stat: StatKey) -> bytes:
    """Binds a sealed cache value to its file version: moved to another row, it does not open."""
    return (
        f"verdict_cache.value:{stat.device}:{stat.inode}:{stat.size}:{stat.mtime_ns}:{stat.ctime_ns}".encode()
    )


def _error_outcome(request: ScanRequest, reason: str) -> Outcome:
    return Outcome(request, Verdict(VerdictKind.ERROR, reason=reason), None, None, None, 0.0)


class _CacheEntry(msgspec.Struct, array_like=True):
    """What the verdict cache keeps of an outcome: no request, no path, no record."""

    verdict: Verdict
    result: ScanResult | None
    classification: Classification | None


_CACHE_ENCODER = msgspec.msgpack.Encoder()
_CACHE_DECODER = msgspec.msgpack.Decoder(_CacheEntry)


def _log_outcome(outcome: Outcome) -> None:
    kind = outcome.verdict.kind
    if kind is VerdictKind.CLEAN and not logs.enabled("debug"):
        return  # the common case: skip building an event that would be filtered anyway
    level = {VerdictKind.CLEAN: "debug", VerdictKind.ERROR: "warning"}.get(kind, "info")
    getattr(log, level)(
        "scan_finished",
        verdict=kind.value,
        kind=outcome.classification.kind if outcome.classification else None,
        detections=[d.name for d in outcome.verdict.detections],
        reason=outcome.verdict.reason or None,
        duration_ms=round(outcome.duration * 1000, 2),
        cached=outcome.cached,
        source=outcome.request.source.value,
    )
