"""Helpers for the retention, rights and quarantine tests: configs, wire records, outcomes, raw bytes."""

from __future__ import annotations

import base64
import datetime as dt
import os
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import samples
from conftest import store_bytes

from agent import config
from agent.minimize import MasterSecret, period_label
from agent.minimize.wire import Record
from agent.model import (
    Classification,
    DataClass,
    Detection,
    Outcome,
    ScanRequest,
    Source,
    StatKey,
    Verdict,
    VerdictKind,
)

DAY = 86_400


def load_config(home: Path) -> config.Config:
    """The config of the agent home ``home`` (ENDPOINT_AGENT_HOME must point at it)."""
    cfg = config.load()
    assert cfg.state_dir == home, "set ENDPOINT_AGENT_HOME (the agent_home fixture) first"
    return cfg


def my_pseudonym(state_dir: Path, when: dt.datetime, period: str = "month") -> str:
    """This install's pseudonym for the period containing ``when``."""
    return MasterSecret.load_or_create(state_dir).pseudonym("verdicts", period_label(when, period))


def record(pseudonym: str, when: dt.datetime, **over: Any) -> Record:
    """A valid wire record under ``pseudonym`` in the hour of ``when``."""
    bucket = when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:00Z")
    return msgspec.convert(samples.wire_record(pseudonym=pseudonym, time_bucket=bucket, **over), Record)


def outcome(
    path: str,
    verdict: VerdictKind = VerdictKind.MALICIOUS,
    severity: str = "high",
    member: str | None = None,
    *,
    data: bytes | None = None,
) -> Outcome:
    """A session outcome for the file at ``path`` with one detection (none when clean)."""
    found = () if verdict is VerdictKind.CLEAN else (Detection("EICAR_Test_File", "yara", severity, member),)
    stat = None if data is not None else StatKey(1, 2, 68, 3, 4)
    if data is None and os.path.lexists(path):  # the verdict is about the file there now
        stat = StatKey.of(os.stat(path, follow_symlinks=False))
    request = ScanRequest(path=path, source=Source.ON_DEMAND, stat=stat, data=data)
    classification = Classification("executable", "com", DataClass.NON_PERSONAL)
    return Outcome(request, Verdict(verdict, found, ""), None, classification, None, 0.01)


def raw_store_bytes(state_dir: Path) -> bytes:
    """Every byte of ``agent.db`` and its WAL and shared-memory files (see ``conftest.store_bytes``)."""
    return store_bytes(state_dir)


def forms(canary: str) -> list[bytes]:
    """The ways a string could sit in a file: plain (UTF-8, UTF-16), hex, base64."""
    raw = canary.encode()
    return [raw, canary.encode("utf-16-le"), raw.hex().encode(), base64.b64encode(raw)]


def rows(state_dir: Path, sql: str) -> list[tuple]:
    """Run one query on the store with a plain connection."""
    db = sqlite3.connect(state_dir / "agent.db")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()
