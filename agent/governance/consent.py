"""The consent ledger: append-only, hash-chained, HMAC-sealed, in the local store (``agent.db``).

Each entry records a purpose, an action (``grant``, ``withdraw``, ``object``, ``age_check_passed``),
the policy version, the purpose's content digest, the SHA-256 of the exact notice text shown, the
channel (``installer``, ``cli``) and the UTC time in seconds. Entry *n* has
``hash = SHA-256(hash[n-1] || canonical(n, fields))`` and ``seal = HMAC-SHA256(K, hash)``, where ``K``
is ``MasterSecret.key("consent-ledger")``. A separate head row holds the entry count and the last
hash under its own seal, rewritten in the same transaction as each append.

What :meth:`ConsentLedger.verify` catches: an edited field, rows reordered, a row deleted in the
middle, rows cut off at the end (the sealed head still counts them), a head rewritten to match, and
any row or head forged without the key. What it cannot catch: someone holding the master secret
(anyone who can read ``master.key``) can rewrite everything consistently; a rollback to an older
state (the whole file restored from a copy, or entries cut off and the head row saved at that
length put back) or deleting every entry *and* the head leaves a ledger that is valid but old or
empty. Catching those needs an anchor off this device (a copy of the sealed head kept elsewhere).
SQLite triggers refuse UPDATE and DELETE on the ledger table; they stop mistakes, not an attacker.

A ledger that does not verify stops every consent and legitimate-interest purpose (fail closed);
contract purposes go on. Withdrawing or objecting purges that purpose's queued records in the same
transaction as the entry, then waits for sends of that purpose already in flight (see
:meth:`begin_send`), so nothing of it leaves after the call returns.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

from agent.errors import ConfigError
from agent.governance.purposes import Purpose, Purposes
from agent.minimize.pseudonym import MasterSecret
from agent.outbox import Store, transaction

__all__ = ["ACTIONS", "CHANNELS", "INSTALL", "ConsentLedger", "Entry", "State", "Verification", "Withdrawal"]

ACTIONS = ("grant", "withdraw", "object", "age_check_passed")
CHANNELS = ("installer", "cli")
INSTALL = "install"  # the purpose name of an age_check_passed entry: the check is per install
_GENESIS = "0" * 64
_DAY = 86_400
_STALE_SEND = 600  # seconds after which an in-flight row of a vanished sender is ignored
_COLUMNS = "seq, purpose, action, policy_version, purpose_digest, notice_sha256, channel, time, hash, seal"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS consent_ledger (
    seq INTEGER PRIMARY KEY, purpose TEXT NOT NULL, action TEXT NOT NULL,
    policy_version INTEGER NOT NULL, purpose_digest TEXT NOT NULL, notice_sha256 TEXT NOT NULL,
    channel TEXT NOT NULL, time INTEGER NOT NULL, hash TEXT NOT NULL, seal TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS consent_head (
    id INTEGER PRIMARY KEY CHECK (id = 1), count INTEGER NOT NULL, hash TEXT NOT NULL, seal TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS egress_inflight (
    id INTEGER PRIMARY KEY, purpose TEXT NOT NULL, pid INTEGER NOT NULL, started INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS consent_ledger_no_update BEFORE UPDATE ON consent_ledger
BEGIN SELECT RAISE(ABORT, 'the consent ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS consent_ledger_no_delete BEFORE DELETE ON consent_ledger
BEGIN SELECT RAISE(ABORT, 'the consent ledger is append-only'); END;
"""


@dataclass(frozen=True, slots=True)
class Entry:
    """One ledger entry as stored."""

    seq: int
    purpose: str
    action: str
    policy_version: int
    purpose_digest: str
    notice_sha256: str
    channel: str
    time: int
    hash: str
    seal: str

    def as_dict(self) -> dict[str, Any]:
        """The entry as a JSON-ready dict (for ``consent show --json`` and export)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class State:
    """Whether a purpose may be used right now, and why; ``since`` is the deciding entry's time."""

    purpose: str
    allowed: bool
    reason: str
    since: int | None = None


@dataclass(frozen=True, slots=True)
class Verification:
    """The result of :meth:`ConsentLedger.verify`; ``problems`` name entries, never contents."""

    ok: bool
    entries: int
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """A recorded withdrawal or objection: the entry, records purged, sends that did not finish."""

    entry: Entry
    purged: int
    unfinished_sends: int = 0


class ConsentLedger:
    """The consent ledger in ``agent.db``; thread-safe, one connection of its own (WAL)."""

    def __init__(
        self,
        path: Path,
        key: bytes,
        purposes: Purposes,
        clock: Callable[[], float] = time.time,
        send_wait: float = 30.0,
    ) -> None:
        Store(path).close()  # the store creates the file 0600 and the outbox schema
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a withdrawal must survive a power cut
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._key, self.purposes, self._clock, self._send_wait = key, purposes, clock, send_wait
        self._lock = threading.RLock()
        self._writes = 0
        self._checked: tuple[tuple[int, int], Verification] | None = None

    @classmethod
    def open(cls, state_dir: Path, purposes: Purposes, clock: Callable[[], float] = time.time) -> Self:
        """The ledger of the install at ``state_dir`` (``agent.db``, key from ``master.key``)."""
        key = MasterSecret.load_or_create(state_dir).key("consent-ledger")
        return cls(state_dir / "agent.db", key, purposes, clock)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def entries(self) -> list[Entry]:
        """Every entry, oldest first."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM consent_ledger ORDER BY seq").fetchall()  # noqa: S608 - constant columns
        return [Entry(*row) for row in rows]

    def verify(self) -> Verification:
        """Recompute the chain, the seals and the head; report every problem found."""
        with self._lock:
            entries = self.entries()
            head = self._db.execute("SELECT count, hash, seal FROM consent_head WHERE id = 1").fetchone()
        problems = [*self._check_chain(entries), *self._check_head(entries, head)]
        return Verification(ok=not problems, entries=len(entries), problems=tuple(problems))

    def state(self, purpose: str) -> State:
        """May ``purpose`` be used right now, by its legal basis and this ledger?"""
        declared = self.purposes.purposes.get(purpose)
        if declared is None:
            return State(purpose, allowed=False, reason="undeclared purpose")
        if declared.basis == "contract":
            return State(purpose, allowed=True, reason="contract (Art. 6(1)(b))")
        with self._lock:
            if not self._verified().ok:
                return State(purpose, allowed=False, reason="the consent ledger does not verify")
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM consent_ledger WHERE purpose = ?"  # noqa: S608 - constant columns
                " AND action IN ('grant', 'withdraw', 'object') ORDER BY seq DESC LIMIT 1",
                (purpose,),
            ).fetchone()
        last = Entry(*row) if row else None
        if declared.basis == "legitimate_interest":
            return _interest_state(purpose, last)
        if last is None:
            return State(purpose, allowed=False, reason="no consent given")
        problem = _consent_problem(declared, last, self.purposes.version, int(self._clock()))
        reason = problem or f"consent given on {_day(last.time)}"
        return State(purpose, allowed=problem is None, reason=reason, since=last.time)

    def grant(self, purpose: str, notice: str, channel: str = "cli") -> Entry:
        """Record consent (or lift an objection) after showing ``notice``, the exact text shown."""
        declared = self.purposes.get(purpose)
        if declared.basis == "contract":
            raise ConfigError(f"{purpose} rests on the contract; there is no consent to give")
        if declared.basis == "consent" and not notice.strip():
            raise ConfigError(f"consent to {purpose} needs the notice text that was shown")
        with self._transaction():
            return self._append(declared.name, "grant", declared.digest, notice, channel)

    def withdraw(self, purpose: str, channel: str = "cli") -> Withdrawal:
        """Withdraw consent and purge that purpose's queued records at once (Art. 7(3))."""
        return self._stop(purpose, "withdraw", "consent", channel)

    def object_to(self, purpose: str, channel: str = "cli") -> Withdrawal:
        """Object to a legitimate-interest purpose and purge its queued records at once (Art. 21)."""
        return self._stop(purpose, "object", "legitimate_interest", channel)

    def age_check_passed(self, channel: str, notice: str = "") -> Entry:
        """Record that the install's age check passed; the date of birth itself is never stored."""
        with self._transaction():
            return self._append(INSTALL, "age_check_passed", "", notice, channel)

    def erase(self) -> None:
        """For ``forget``: drop the ledger, its head and sends in flight; then close it."""
        with self._transaction():
            for table in ("consent_ledger", "consent_head", "egress_inflight"):
                self._db.execute(f"DROP TABLE IF EXISTS {table}")
        self._writes += 1

    def begin_send(self, purpose: str) -> tuple[State, int | None]:
        """Check ``purpose`` and, when allowed, register a send in flight (serialized with withdrawals)."""
        with self._transaction():
            stale = int(time.time()) - _STALE_SEND
            self._db.execute("DELETE FROM egress_inflight WHERE started < ?", (stale,))
            state = self.state(purpose)
            if not state.allowed:
                return state, None
            cur = self._db.execute(
                "INSERT INTO egress_inflight (purpose, pid, started) VALUES (?, ?, ?)",
                (purpose, os.getpid(), int(time.time())),
            )
            return state, cur.lastrowid

    def end_send(self, lease: int) -> None:
        """Mark a send registered by :meth:`begin_send` as finished."""
        with self._transaction():
            self._db.execute("DELETE FROM egress_inflight WHERE id = ?", (lease,))

    def purge(self, purpose: str) -> int:
        """Delete every queued (and set-aside) record of ``purpose``; return how many were queued."""
        with self._transaction():
            return self._purge(purpose)

    def queued_purposes(self) -> list[str]:
        """The distinct purposes of the records waiting in the outbox."""
        with self._lock:
            return [p for (p,) in self._db.execute("SELECT DISTINCT purpose FROM outbox ORDER BY purpose")]

    def add_counter(self, name: str, by: int) -> None:
        """Add ``by`` to the persistent counter ``name`` (the store's ``counters`` table)."""
        with self._transaction():
            self._db.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?)"
                " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (name, by),
            )

    def counters(self, prefix: str) -> dict[str, int]:
        """The persistent counters whose names start with ``prefix``, without the prefix."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name, value FROM counters WHERE substr(name, 1, ?) = ?", (len(prefix), prefix)
            )
            return {name[len(prefix) :]: int(value) for name, value in rows}

    # ------------------------------------------------------------------ internals

    def _stop(self, purpose: str, action: str, basis: str, channel: str) -> Withdrawal:
        declared = self.purposes.get(purpose)
        if declared.basis != basis:
            verb = {"consent": "withdraw", "legitimate_interest": "object"}.get(declared.basis)
            hint = f"; use `consent {verb} {purpose}`" if verb else "; it stops only with the contract"
            raise ConfigError(f"{purpose} rests on {declared.basis.replace('_', ' ')}{hint}")
        with self._transaction():
            entry = self._append(purpose, action, declared.digest, "", channel)
            purged = self._purge(purpose)
            (mark,) = self._db.execute("SELECT coalesce(max(id), 0) FROM egress_inflight").fetchone()
        return Withdrawal(entry, purged, self._wait_for_sends(purpose, int(mark)))

    def _purge(self, purpose: str) -> int:
        purged = self._db.execute("DELETE FROM outbox WHERE purpose = ?", (purpose,)).rowcount
        self._db.execute("DELETE FROM outbox_poison WHERE purpose = ?", (purpose,))
        return int(purged)

    def _wait_for_sends(self, purpose: str, mark: int) -> int:
        """Wait (bounded) until sends of ``purpose`` that began before the entry have finished."""
        deadline = time.monotonic() + self._send_wait
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT pid, started FROM egress_inflight WHERE purpose = ? AND id <= ?", (purpose, mark)
                ).fetchall()
            live = [pid for pid, started in rows if _alive(pid) and time.time() - started < _STALE_SEND]
            if not live or time.monotonic() >= deadline:
                return len(live)
            time.sleep(0.02)

    def _append(self, purpose: str, action: str, digest: str, notice: str, channel: str) -> Entry:
        if channel not in CHANNELS:
            raise ConfigError(f"unknown consent channel {channel!r}; one of {', '.join(CHANNELS)}")
        row = self._db.execute("SELECT seq, hash FROM consent_ledger ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (row[0] + 1, row[1]) if row else (1, _GENESIS)
        fields = (purpose, action, self.purposes.version, digest, _sha256(notice), channel)
        now = int(self._clock())
        digest_hex = _chain_hash(prev, seq, *fields, now)
        entry = Entry(seq, *fields, now, digest_hex, self._seal(b"entry", digest_hex))
        self._db.execute(
            f"INSERT INTO consent_ledger ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608 - constant columns
            (entry.seq, *fields, now, entry.hash, entry.seal),
        )
        self._writes += 1  # invalidates the cached verification, whether or not this commits
        head = f"{seq}:{digest_hex}"
        self._db.execute(
            "INSERT OR REPLACE INTO consent_head (id, count, hash, seal) VALUES (1, ?, ?, ?)",
            (seq, digest_hex, self._seal(b"head", head)),
        )
        return entry

    def _seal(self, domain: bytes, text: str) -> str:
        return hmac.new(self._key, domain + b"\0" + text.encode(), hashlib.sha256).hexdigest()

    def _check_chain(self, entries: list[Entry]) -> Iterator[str]:
        prev = _GENESIS
        for position, e in enumerate(entries, start=1):
            if e.seq != position:
                yield f"entry {position}: sequence number {e.seq} out of place (a row was removed or moved)"
            fields = (e.purpose, e.action, e.policy_version, e.purpose_digest, e.notice_sha256, e.channel)
            if _chain_hash(prev, e.seq, *fields, e.time) != e.hash:
                yield f"entry {e.seq}: hash does not match its contents or its place in the chain"
            if not hmac.compare_digest(self._seal(b"entry", e.hash), e.seal):
                yield f"entry {e.seq}: seal is not valid (written or changed without the key)"
            prev = e.hash

    def _check_head(self, entries: list[Entry], head: tuple[int, str, str] | None) -> Iterator[str]:
        last = entries[-1].hash if entries else _GENESIS
        if head is None:
            if entries:
                yield "head record is missing"
            return
        count, digest_hex, seal = head
        if not hmac.compare_digest(self._seal(b"head", f"{count}:{digest_hex}"), seal):
            yield "head record seal is not valid"
        if count != len(entries) or digest_hex != last:
            yield f"head records {count} entries but {len(entries)} are present (entries cut off or added)"

    def _verified(self) -> Verification:
        """:meth:`verify`, cached until this or another connection writes to the file."""
        (data_version,) = self._db.execute("PRAGMA data_version").fetchone()
        mark = (int(data_version), self._writes)
        if self._checked is None or self._checked[0] != mark:
            self._checked = (mark, self.verify())
        return self._checked[1]

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock, transaction(self._db):
            yield


def _interest_state(purpose: str, last: Entry | None) -> State:
    if last is None or last.action == "grant":
        since = last.time if last else None
        return State(purpose, allowed=True, reason="legitimate interest; no objection", since=since)
    return State(purpose, allowed=False, reason=f"objection recorded on {_day(last.time)}", since=last.time)


def _consent_problem(purpose: Purpose, grant: Entry, version: int, now: int) -> str | None:
    """Why the last consent entry does not allow ``purpose`` now, or None when it does."""
    if grant.action != "grant":
        return f"consent withdrawn on {_day(grant.time)}"
    if grant.purpose_digest != purpose.digest:
        changed = f"policy version {grant.policy_version} -> {version}"
        return f"the purpose changed since consent ({changed}); consent again"
    if now - grant.time > (purpose.max_consent_age_days or 0) * _DAY:
        return (
            f"consent of {_day(grant.time)} is older than {purpose.max_consent_age_days} days; consent again"
        )
    return None


def _chain_hash(prev: str, seq: int, *fields: object) -> str:
    body = json.dumps([seq, *fields], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev}\n{body}".encode()).hexdigest()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _day(when: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(when))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, under another user
    return True
