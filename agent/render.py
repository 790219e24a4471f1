"""Rendering scan outcomes for people (rich) and for programs (JSON lines), and the privacy receipt.

Paths are shown only on the local terminal or in local JSON output, and always with control
characters escaped, so a file name cannot move the cursor, rewrite a line or forge output.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from rich.console import Console
from rich.progress import Progress as RichProgress
from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from agent.minimize import encode_record
from agent.minimize.wire import Record
from agent.model import DataClass, Outcome, VerdictKind

__all__ = ["Progress", "Summary", "outcome_json", "print_outcome", "print_summary", "receipt", "safe"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]|[\ud800-\udfff]")
_MIB = 1024 * 1024


def safe(text: str) -> str:
    """Escape control characters and undecodable bytes so ``text`` prints as one inert line."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()) & 0xFF:02x}", text)


def display_path(outcome: Outcome) -> str:
    """The path as shown to the local user (``-`` for standard input)."""
    return outcome.request.display or outcome.request.path


@dataclass(slots=True)
class Summary:
    """Counts over a whole scan, and the records that would leave the device."""

    started: float = field(default_factory=time.monotonic)
    verdicts: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    personal_types: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)  # files quarantined, or that failed to be
    personal_files: int = 0
    non_personal_files: int = 0
    cached: int = 0
    bytes: int = 0
    records: list[Record] = field(default_factory=list)
    queued: int = 0  # records waiting in the outbox after the scan (this scan's and earlier ones)
    delivered: int | None = None  # records sent to the cloud at the end (None: no upstream, or --no-upload)
    delivery_error: str = ""

    def add(self, outcome: Outcome) -> None:
        """Count one outcome."""
        self.verdicts[outcome.verdict.kind.value] += 1
        self.cached += outcome.cached
        if outcome.verdict.kind in (VerdictKind.UNSCANNED, VerdictKind.ERROR):
            self.reasons[outcome.verdict.reason or "unknown"] += 1
        if outcome.result is not None:
            self.bytes += outcome.result.size
        cls = outcome.classification
        if cls is not None:
            self.kinds[cls.kind] += 1
            self.personal_types.update(cls.personal_data)
            if cls.data_class is DataClass.PERSONAL:
                self.personal_files += 1
            else:
                self.non_personal_files += 1
        if outcome.record is not None:
            self.records.append(outcome.record)
        if outcome.action is not None:
            self.actions[outcome.action] += 1

    @property
    def files(self) -> int:
        """Objects scanned (or answered from the cache)."""
        return sum(self.verdicts.values())

    @property
    def found(self) -> int:
        """Objects with a malicious or suspicious verdict."""
        return self.verdicts["malicious"] + self.verdicts["suspicious"]

    @property
    def errors(self) -> int:
        """Objects that could not be scanned because of an error."""
        return self.verdicts["error"]

    @property
    def unscanned(self) -> int:
        """Objects that hit a limit."""
        return self.verdicts["unscanned"]

    def as_dict(self, rules_version: str) -> dict[str, Any]:
        """The summary as a JSON-able mapping."""
        seconds = max(time.monotonic() - self.started, 1e-9)
        return {
            "files": self.files,
            "verdicts": dict(self.verdicts),
            "detections": self.found,
            "not_fully_scanned": dict(self.reasons),
            "kinds": dict(self.kinds),
            "personal_files": self.personal_files,
            "cached": self.cached,
            "skipped": dict(self.skipped),
            "actions": dict(self.actions),
            "bytes": self.bytes,
            "seconds": round(seconds, 3),
            "files_per_second": round(self.files / seconds, 1),
            "mib_per_second": round(self.bytes / _MIB / seconds, 1),
            "records": len(self.records),
            "queued": self.queued,
            "delivered": self.delivered,
            "delivery_error": self.delivery_error or None,
            "rules_version": rules_version,
        }


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    """One JSON line of ``scan --json`` (local output: it holds the path)."""
    cls, result = outcome.classification, outcome.result
    return {
        "path": display_path(outcome),
        "verdict": outcome.verdict.kind.value,
        "detections": [
            {
                "name": d.name,
                "source": d.source,
                "severity": d.severity,
                **({"member": d.member} if d.member else {}),
            }
            for d in outcome.verdict.detections
        ],
        "reason": outcome.verdict.reason or None,
        "kind": cls.kind if cls else None,
        "format": cls.fmt if cls else None,
        "data_class": cls.data_class.value if cls else None,
        "personal_data": cls.personal_data if cls else {},
        "notes": list(cls.notes) if cls else [],
        "sha256": result.sha256 if result else None,
        "size": result.size if result else None,
        "cached": outcome.cached,
        "duration_ms": round(outcome.duration * 1000, 3),
        "upstream": json.loads(encode_record(outcome.record)) if outcome.record else None,
        "action": outcome.action,  # null: reported only
        **({"quarantine_item": outcome.action_detail} if outcome.action == "quarantined" else {}),
        **({"action_error": outcome.action_detail} if outcome.action == "quarantine_failed" else {}),
    }


class Progress:
    """A rich progress line on standard error (files, files/s, MB/s), only on a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.console = Console(stderr=True)
        self._out = Console(highlight=False, soft_wrap=True)  # resolves sys.stdout at print time
        self._enabled = enabled
        self._files = 0
        self._bytes = 0
        self._started = time.monotonic()
        self._bar = RichProgress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self._task = self._bar.add_task("starting", total=None)

    def __enter__(self) -> Self:
        if self._enabled:
            self._bar.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._enabled:
            self._show()
            self._bar.refresh()
            self._bar.stop()

    def advance(self, outcome: Outcome) -> None:
        """Count one outcome into the rates."""
        if not self._enabled:
            return
        self._files += 1
        self._bytes += outcome.result.size if outcome.result else 0
        if self._files % 64 == 1:
            self._show()

    def _show(self) -> None:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        mbps = self._bytes / _MIB / elapsed
        rate = f"{self._files:,} files  {self._files / elapsed:,.0f} files/s  {mbps:,.1f} MB/s"
        self._bar.update(self._task, description=rate)

    def print(self, text: Text) -> None:
        """Print a line to standard output (above the progress bar, which redirects it)."""
        self._out.print(text)


_STYLE = {"malicious": "bold red", "suspicious": "yellow", "unscanned": "magenta", "error": "red"}


def print_outcome(outcome: Outcome, progress: Progress) -> None:
    """Print one line for anything that is not clean, clamscan style: ``path: Name FOUND``."""
    kind = outcome.verdict.kind
    if kind is VerdictKind.CLEAN:
        return
    line = Text(safe(display_path(outcome)) + ": ")
    if kind in (VerdictKind.MALICIOUS, VerdictKind.SUSPICIOUS):
        names = ", ".join(_label(d.name, d.member) for d in outcome.verdict.detections if d.source != "limit")
        line.append(f"{names} FOUND ({kind.value})", style=_STYLE[kind.value])
        if outcome.action == "quarantined":
            line.append(f" -> quarantined (item {outcome.action_detail})", style="bold")
        elif outcome.action == "quarantine_failed":
            line.append(f" -> not quarantined: {safe(outcome.action_detail or '')}", style="bold red")
    elif kind is VerdictKind.UNSCANNED:
        line.append(f"{safe(outcome.verdict.reason)} UNSCANNED", style=_STYLE["unscanned"])
    else:
        line.append(f"{safe(outcome.verdict.reason)} ERROR", style=_STYLE["error"])
    progress.print(line)


def _label(name: str, member: str | None) -> str:
    return f"{name} in {safe(member)}" if member else name


def print_summary(summary: Summary, rules_version: str, *, show_receipt: bool) -> None:
    """Print the end-of-scan summary, and the privacy receipt when asked."""
    console = Console(file=sys.stdout, highlight=False)
    data = summary.as_dict(rules_version)
    table = Table(title="Scan summary", show_header=False, box=None)
    table.add_row("Files scanned", f"{summary.files:,} ({summary.cached:,} unchanged, from cache)")
    v = summary.verdicts
    table.add_row(
        "Detections", f"{summary.found:,} ({v['malicious']} malicious, {v['suspicious']} suspicious)"
    )
    if summary.actions:
        table.add_row(
            "Actions", ", ".join(f"{n:,} {k.replace('_', ' ')}" for k, n in sorted(summary.actions.items()))
        )
    table.add_row("Not fully scanned", f"{summary.unscanned + summary.errors:,}")
    for reason, count in summary.reasons.most_common():
        table.add_row("", f"{count:,} x {safe(reason)}")
    if summary.skipped:
        table.add_row("Skipped", ", ".join(f"{n:,} {k}" for k, n in sorted(summary.skipped.items())))
    rates = f"{data['files_per_second']:,.0f} files/s, {data['mib_per_second']:,.1f} MB/s"
    table.add_row("Data", f"{summary.bytes / _MIB:,.1f} MiB in {data['seconds']:.2f} s ({rates})")
    table.add_row("Rules version", rules_version)
    if summary.delivered is not None:
        sent = f"{summary.delivered:,} records sent, {summary.queued:,} still queued"
        table.add_row(
            "Upstream", sent + (f" ({safe(summary.delivery_error)})" if summary.delivery_error else "")
        )
    console.print(table)
    if show_receipt:
        console.print(Text(receipt_text(summary)), soft_wrap=True)  # exact records: never wrapped


def receipt(summary: Summary) -> dict[str, Any]:
    """The privacy receipt: the exact records that would leave, and what stayed on the device."""
    return {
        "would_leave": [json.loads(encode_record(r)) for r in summary.records],
        "outbox_queued": summary.queued,
        "stayed_local": {
            "personal_files": summary.personal_files,
            "personal_data_found": dict(summary.personal_types),
            "non_personal_files": summary.non_personal_files,
            "statement": _stayed_statement(summary),
        },
    }


def _files(count: int) -> str:
    return f"{count:,} file" if count == 1 else f"{count:,} files"


def _stayed_statement(summary: Summary) -> str:
    return (
        f"{_files(summary.personal_files)} with personal data; contents, names and paths kept local. "
        f"{_files(summary.non_personal_files)} without personal data; names, paths and contents kept local. "
        "No file name, path, user name, host name, content or personal value is in any record."
    )


def receipt_text(summary: Summary) -> str:
    """The privacy receipt as text for the terminal."""
    lines = ["", "Privacy receipt", "---------------"]
    count = len(summary.records)
    lines.append(f"Would leave this device: {count} record{'' if count == 1 else 's'}, purpose 'protection':")
    lines.extend("  " + encode_record(r).decode() for r in summary.records)
    if not summary.records:
        lines.append("  (nothing from this scan)")
    lines.append(f"  Queued in the local outbox in all (this and earlier scans): {summary.queued}")
    lines.append("Stayed on this device:")
    lines.append("  " + _stayed_statement(summary))
    if summary.personal_types:
        found = ", ".join(f"{k}: {v:,}" for k, v in sorted(summary.personal_types.items()))
        lines.append(f"  Personal data seen (counts only, values never stored): {found}")
    return "\n".join(lines)


def render_status(info: dict[str, Any]) -> str:
    """The service status for a terminal: one fact a line."""
    if not info.get("running"):
        return f"endpoint-agent service: not running ({info.get('reason', 'no answer')})"
    lines = [
        f"endpoint-agent service: running {info.get('version', '')}, up {info.get('uptime_s', 0)} s",
        f"rules version:   {info.get('rules_version', '?')}",
        f"queue depth:     {info.get('queue_depth', 0)}",
        f"cache entries:   {info.get('cache_entries', '?')}",
        f"outbox depth:    {info.get('outbox_depth', '?')}",
        f"cpu / rss:       {info.get('cpu_percent', 0)} % / {info.get('rss_mb', 0)} MB",
        f"processes:       {info.get('processes', 1)}",
    ]
    scanned, found = info.get("scanned", {}), info.get("detections", {})
    lines.extend(
        f"{source + ':':16} {scanned.get(source, 0)} scanned, {found.get(source, 0)} detections"
        for source in sorted(set(scanned) | set(found))
    )
    return "\n".join(lines)
