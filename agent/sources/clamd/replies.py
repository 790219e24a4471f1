"""What a clamd client is told: an outcome as ``OK``/``FOUND``/``ERROR``, and the fixed replies.

An outcome gives the client nothing but a status: the first detection's name, the limit that
stopped the scan, or the error reason. An ``unscanned`` object is reported ``FOUND`` with the
limit's name, never ``OK``: a mail filter must not pass what was not fully looked at.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from agent.model import Detection, Outcome, VerdictKind
from agent.sources.clamd.protocol import COMMANDS

__all__ = [
    "Tally",
    "clean_text",
    "outcome_statuses",
    "stats_body",
    "versioncommands",
]

_TERMINATORS = re.compile(r"[\x00\n\r]")
_SCAN_FAILED = "Scan failed"
_UNSCANNED = "Limits.Exceeded"


def clean_text(text: str) -> str:
    """``text`` with NUL, CR and LF replaced, so it cannot end or split a reply."""
    return _TERMINATORS.sub(" ", text)


def _names(detections: tuple[Detection, ...], *, limits: bool) -> list[str]:
    """Detection names, limit detections first when ``limits``, else everything else first."""
    ranked = sorted(detections, key=lambda d: (d.source == "limit") != limits)
    return list(dict.fromkeys(clean_text(d.name) for d in ranked))


def outcome_statuses(outcome: Outcome, *, allmatch: bool = False) -> tuple[tuple[str, ...], str]:
    """The status texts for one object, and its tally kind (``ok``, ``infected`` or ``error``).

    One status, or with ``allmatch`` one per detection (ALLMATCHSCAN).
    """
    verdict = outcome.verdict
    kind = verdict.kind
    if kind is VerdictKind.CLEAN:
        return ("OK",), "ok"
    if kind is VerdictKind.ERROR:
        return (f"{clean_text(verdict.reason) or _SCAN_FAILED} ERROR",), "error"
    names = _names(verdict.detections, limits=kind is VerdictKind.UNSCANNED) or [_UNSCANNED]
    return tuple(f"{name} FOUND" for name in (names if allmatch else names[:1])), "infected"


def versioncommands(version: str) -> str:
    """The VERSIONCOMMANDS reply: the version, then clamd's command list."""
    return f"{clean_text(version)}| COMMANDS: {' '.join(COMMANDS)}"


def stats_body(stats: Mapping[str, int], *, connections: int, idle_timeout: float) -> str:
    """The STATS reply in clamd's layout (whose format clamd calls subject to change).

    ``threads_live``, ``threads_idle``, ``threads_max`` and ``queue`` fill clamd's lines; every
    other key becomes a ``NAME: value`` line of its own.
    """
    known = {"threads_live", "threads_idle", "threads_max", "queue"}
    extra = [f"{clean_text(k).upper()}: {int(v)}" for k, v in sorted(stats.items()) if k not in known]
    lines = [
        "POOLS: 1",
        "",
        "STATE: VALID PRIMARY",
        (
            f"THREADS: live {int(stats.get('threads_live', 0))}  idle {int(stats.get('threads_idle', 0))} "
            f"max {int(stats.get('threads_max', 0))} idle-timeout {round(idle_timeout)}"
        ),
        f"QUEUE: {int(stats.get('queue', 0))} items",
        f"CONNECTIONS: {connections}",
        *extra,
        "",
        "MEMSTATS: heap N/A mmap N/A used N/A free N/A releasable N/A pools 1 pools_used N/A pools_total N/A",
        "END",
    ]
    return "\n".join(lines)


class Tally:
    """Counts for a path scan, to decide whether the final ``<path>: OK`` line is due (as clamd)."""

    __slots__ = ("errors", "infected", "total")

    def __init__(self) -> None:
        self.total = 0
        self.infected = 0
        self.errors = 0

    def add(self, kind: str) -> None:
        """Count one object of tally kind ``kind``."""
        self.total += 1
        if kind == "infected":
            self.infected += 1
        elif kind == "error":
            self.errors += 1

    @property
    def all_clear(self) -> bool:
        """Nothing found and not everything failed: clamd then ends with ``<path>: OK``."""
        return self.infected == 0 and not (self.total and self.errors == self.total)
