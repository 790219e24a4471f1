"""The egress gate: a payload leaves only when its purpose's legal basis holds right now.

A purpose may be used when it is declared (with the payload kind, when one is named), has a
recipient, every recipient outside the EU/EEA names its transfer mechanism, and its basis holds in
the consent ledger: contract always; legitimate interest unless objected to; consent when granted
for the purpose as it now reads, not withdrawn and not older than its maximum age. Records of other
purposes are dropped before they are queued, and the drop is counted in the store (``counters``:
``egress_dropped:<purpose>``).

Call :meth:`EgressGate.filter` before queueing, :meth:`EgressGate.purge_disallowed` before each
delivery run, and send inside :meth:`EgressGate.sending`, which registers the send so that a
withdrawal waits for it: nothing of a purpose leaves after its withdrawal has returned.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, Self, TypeVar

import structlog

from agent.config import Config
from agent.errors import ConfigError
from agent.governance.consent import ConsentLedger
from agent.governance.purposes import EEA, Purposes, load_purposes

__all__ = ["DROP_COUNTER", "Decision", "EgressGate"]

log = structlog.get_logger("endpoint-agent")
DROP_COUNTER = "egress_dropped:"


class _HasPurpose(Protocol):
    @property
    def purpose(self) -> str: ...


_R = TypeVar("_R", bound=_HasPurpose)


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a purpose's payloads may leave right now, and why."""

    allowed: bool
    reason: str


class EgressGate:
    """Decides per purpose from the declared purposes and the consent ledger (which it does not own)."""

    def __init__(self, purposes: Purposes, ledger: ConsentLedger) -> None:
        if ledger.purposes != purposes:
            raise ConfigError("the egress gate and the consent ledger must use the same purposes")
        self.purposes, self.ledger = purposes, ledger
        self._owned = False

    @classmethod
    def open(cls, config: Config, clock: Callable[[], float] = time.time) -> Self:
        """A gate over the purposes in force and this install's ledger; :meth:`close` closes both."""
        purposes = load_purposes(config)
        gate = cls(purposes, ConsentLedger.open(config.state_dir, purposes, clock))
        gate._owned = True
        return gate

    def close(self) -> None:
        """Close the ledger when this gate opened it."""
        if self._owned:
            self.ledger.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def allows(self, purpose: str, kind: str | None = None) -> Decision:
        """May payloads of ``purpose`` (of payload ``kind``, when given) leave right now?"""
        static = self._declared(purpose, kind)
        if static is not None:
            return static
        state = self.ledger.state(purpose)
        return Decision(allowed=state.allowed, reason=state.reason)

    def filter(self, records: Iterable[_R]) -> list[_R]:
        """The records whose purpose is allowed now; the others are dropped and counted."""
        decisions: dict[str, Decision] = {}
        kept: list[_R] = []
        dropped: Counter[str] = Counter()
        for record in records:
            if record.purpose not in decisions:
                decisions[record.purpose] = self.allows(record.purpose)
            if decisions[record.purpose].allowed:
                kept.append(record)
            else:
                dropped[record.purpose] += 1
        for purpose, count in dropped.items():
            self._count(purpose, count, decisions[purpose].reason)
        return kept

    def purge_disallowed(self) -> int:
        """Delete queued records of every purpose not allowed now (e.g. queued while consent ended)."""
        total = 0
        for purpose in self.ledger.queued_purposes():
            decision = self.allows(purpose)
            if not decision.allowed:
                purged = self.ledger.purge(purpose)
                if purged:
                    self._count(purpose, purged, decision.reason)
                total += purged
        return total

    @contextmanager
    def sending(self, purpose: str, kind: str | None = None) -> Iterator[Decision]:
        """Check ``purpose`` (and ``kind``); when allowed, hold the send as in flight until the body ends."""
        static = self._declared(purpose, kind)
        if static is not None or self.purposes.get(purpose).basis == "contract":  # nothing to withdraw
            yield static or self.allows(purpose, kind)
            return
        state, lease = self.ledger.begin_send(purpose)
        try:
            yield Decision(allowed=state.allowed, reason=state.reason)
        finally:
            if lease is not None:
                self.ledger.end_send(lease)

    def drops(self) -> dict[str, int]:
        """Records dropped by the gate so far, per purpose (persistent)."""
        return self.ledger.counters(DROP_COUNTER)

    def _declared(self, purpose: str, kind: str | None) -> Decision | None:
        """A refusal from the purposes file alone, or None when the ledger must decide."""
        declared = self.purposes.purposes.get(purpose)
        if declared is None:
            return Decision(allowed=False, reason=f"undeclared purpose {purpose!r}")
        if kind is not None and kind not in declared.payloads:
            return Decision(allowed=False, reason=f"payload kind {kind!r} is not declared for {purpose}")
        if not declared.recipients:
            return Decision(allowed=False, reason="no recipient declared")
        for recipient in declared.recipients:
            if recipient.country not in EEA and not recipient.transfer:
                return Decision(
                    allowed=False, reason="a recipient outside the EU/EEA has no transfer mechanism"
                )
        return None

    def _count(self, purpose: str, count: int, reason: str) -> None:
        self.ledger.add_counter(DROP_COUNTER + purpose, count)
        log.info("egress_records_dropped", purpose=purpose, dropped=count, reason=reason)
