"""Delivering the outbox to the security cloud: batches, retries, poison records, bounds.

Each batch is the oldest queued records, bounded by count and bytes, sent as gzip'd JSON. A batch
the cloud stored is deleted from the outbox in the same transaction that writes it to the
transparency log, so a crash at any point either resends the batch (the cloud keeps each
``record_id`` once) or has logged and removed it: nothing is lost or stored twice.

A batch the cloud refuses as malformed (400, 413, 415, 422) is split in halves until the refused
record stands alone; that record is moved aside with the cloud's reason, and the others go on. Any
other failure leaves the queue as it is and backs off (exponential, full jitter, Retry-After).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from agent.errors import UpstreamError, UpstreamRejected, UpstreamUnavailable
from agent.governance import Decision, EgressGate
from agent.outbox.store import Store
from agent.upstream import Backoff, UpstreamClient

__all__ = ["Deliverer", "DeliveryLoop", "DeliveryReport", "DeliverySettings"]

log = structlog.get_logger("endpoint-agent")
_POISON_STATUSES = frozenset({400, 413, 415, 422})
_PURPOSE = "protection"


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """Batching and bounds, from ``[upstream]``."""

    batch_max_records: int = 500
    batch_max_bytes: int = 256 << 10
    max_outbox_records: int = 100_000
    max_outbox_age: float = 30 * 86_400.0


@dataclass(slots=True)
class DeliveryReport:
    """What one delivery run did."""

    sent: int = 0
    batches: int = 0
    poisoned: int = 0
    dropped: int = 0
    error: str = ""
    retry_after: float | None = None


class Deliverer:
    """Sends the outbox through ``client``; one instance per thread (it owns its store handle)."""

    def __init__(
        self,
        store: Store,
        client: UpstreamClient,
        settings: DeliverySettings,
        *,
        backoff: Backoff | None = None,
        sleep: Callable[[float], object] = time.sleep,
        gate: EgressGate | None = None,
    ) -> None:
        self.store, self.client, self.settings, self.gate = store, client, settings, gate
        self.backoff = backoff or Backoff()
        self._sleep = sleep
        self.failures = 0

    def deliver(self, deadline: float | None = None) -> DeliveryReport:
        """Send batches until the outbox is empty, the cloud is unavailable, or ``deadline`` passes."""
        report = DeliveryReport()
        report.dropped = self.store.enforce_bounds(
            self.settings.max_outbox_records, self.settings.max_outbox_age
        )
        if report.dropped:
            log.warning("outbox_records_dropped", dropped=report.dropped)
        if self.gate is not None:
            self.gate.purge_disallowed()
        while deadline is None or time.monotonic() < deadline:
            batch = self.store.outbox_batch(self.settings.batch_max_records, self.settings.batch_max_bytes)
            if not batch:
                break
            try:
                self._send(batch, report)
            except UpstreamError as exc:
                self.failures += 1
                report.error = str(exc)
                report.retry_after = getattr(exc, "retry_after", None)
                log.warning("delivery_failed", error=str(exc), queued=len(batch), failures=self.failures)
                break
            self.failures = 0
        return report

    def deliver_with_retries(self, deadline: float) -> DeliveryReport:
        """Deliver, backing off between failures, until the outbox is empty or ``deadline``."""
        while True:
            report = self.deliver(deadline)
            if not report.error:
                return report
            pause = self.backoff.delay(self.failures - 1, report.retry_after)
            if time.monotonic() + pause >= deadline:
                return report
            self._sleep(pause)

    def _send(self, batch: list[tuple[str, bytes]], report: DeliveryReport) -> None:
        payload = b"[" + b",".join(body for _, body in batch) + b"]"
        with self._sending() as decision:
            if not decision.allowed:
                raise UpstreamUnavailable(f"the {_PURPOSE} purpose may not send now: {decision.reason}")
            self._post(batch, payload, report)

    def _sending(self) -> contextlib.AbstractContextManager[Decision]:
        if self.gate is None:
            return contextlib.nullcontext(Decision(allowed=True, reason="no gate"))
        return self.gate.sending(_PURPOSE, "verdicts")

    def _post(self, batch: list[tuple[str, bytes]], payload: bytes, report: DeliveryReport) -> None:
        try:
            self.client.send_verdicts(payload)
        except UpstreamRejected as exc:
            self.store.log_sent(self.client.recipient, _PURPOSE, "verdicts_refused", payload)
            if exc.status not in _POISON_STATUSES:
                raise UpstreamUnavailable(f"the cloud refused delivery: {exc}") from exc
            self._bisect(batch, exc, report)
            return
        self.store.acknowledge([r for r, _ in batch], self.client.recipient, _PURPOSE, payload)
        report.sent += len(batch)
        report.batches += 1
        log.info("records_delivered", records=len(batch))

    def _bisect(self, batch: list[tuple[str, bytes]], exc: UpstreamRejected, report: DeliveryReport) -> None:
        """Find the refused records by halving; deliver the rest."""
        if len(batch) == 1:
            self.store.poison(batch[0][0], exc.reason)
            report.poisoned += 1
            log.warning("record_poisoned", status=exc.status, reason=exc.reason)
            return
        middle = len(batch) // 2
        for half in (batch[:middle], batch[middle:]):
            self._post(half, b"[" + b",".join(body for _, body in half) + b"]", report)


class DeliveryLoop:
    """The service's delivery thread: every ``interval`` seconds, send what is queued; back off on failure."""

    def __init__(
        self,
        store_path: Path,
        client: UpstreamClient,
        settings: DeliverySettings,
        interval: float,
        gate: EgressGate | None = None,
    ) -> None:
        self._store_path, self._client, self._settings, self._interval = (
            store_path,
            client,
            settings,
            interval,
        )
        self._gate = gate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="delivery", daemon=True)
        self.sent = 0
        self.last_error = ""

    def start(self) -> None:
        """Start delivering."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current request; what is queued stays in the outbox for the next start."""
        self._stop.set()
        self._thread.join(15.0)
        self._client.close()

    def status(self) -> dict[str, object]:
        """Counters for ``endpoint-agent status``."""
        return {"sent": self.sent, "last_error": self.last_error or None}

    def _loop(self) -> None:
        store = Store(self._store_path)
        deliverer = Deliverer(store, self._client, self._settings, gate=self._gate)
        try:
            while not self._stop.wait(self._interval):
                report = deliverer.deliver()
                self.sent += report.sent
                self.last_error = report.error
                if report.error:
                    pause = deliverer.backoff.delay(deliverer.failures - 1, report.retry_after)
                    self._stop.wait(pause)
        finally:
            store.close()
