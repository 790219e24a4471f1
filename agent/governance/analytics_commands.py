"""``endpoint-agent analytics show | send-now`` and ``endpoint-agent support-bundle --out FILE``.

::

    endpoint-agent analytics show [--json]     the mechanism, consent, local counters and ε spent per day
    endpoint-agent analytics send-now          make the due reports and send them now (needs consent)
    endpoint-agent support-bundle --out FILE [--log FILE]...
                                               logs, config without secrets and status, for support;
                                               refused (nothing written) if anything personal is in it

Exit codes: 0 done (or nothing was due); 1 not done: no consent, no cloud configured, or the
bundle was refused; 2 an error (the cloud was unavailable or refused the reports, a file failed).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.config import Config
from agent.errors import AgentError
from agent.governance.analytics import PURPOSE, Analytics, sender_from_config
from agent.governance.gate import EgressGate
from agent.minimize.analytics import COUNTERS, EPSILON
from agent.outbox import Store

__all__ = ["COMMANDS", "EXIT_ERROR", "EXIT_NOT_DONE", "EXIT_OK", "add_parsers", "run"]

COMMANDS = ("analytics", "support-bundle")
EXIT_OK, EXIT_NOT_DONE, EXIT_ERROR = 0, 1, 2


def add_parsers(subparsers: Any) -> None:  # noqa: ANN401 - argparse's subparsers type is private
    """Add ``analytics`` and ``support-bundle`` to the top-level ``subparsers``."""
    analytics = subparsers.add_parser("analytics", help="anonymized product analytics: show, send-now")
    actions = analytics.add_subparsers(dest="analytics_action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="the mechanism, consent state, local counters and ε spent")
    show.add_argument("--json", action="store_true", help="one JSON document")
    actions.add_parser("send-now", help="make the due reports and send them now (needs consent)")
    bundle = subparsers.add_parser(
        "support-bundle", help="logs, config and status for support; refused if anything personal is in it"
    )
    bundle.add_argument("--out", required=True, type=Path, metavar="FILE", help="the tar.gz to write (0600)")
    bundle.add_argument(
        "--log", action="append", default=[], type=Path, metavar="FILE", help="also include this log file"
    )
    for name in COMMANDS:
        subparsers.choices[name].add_argument(
            "--config", type=Path, metavar="FILE", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )


def run(args: argparse.Namespace, config: Config, clock: Callable[[], float] = time.time) -> int:
    """Run one of :data:`COMMANDS`; return the exit code."""
    try:
        if args.command == "support-bundle":
            return _bundle(args, config)
        if args.analytics_action == "show":
            return _show(args, config, clock)
        return _send_now(config, clock)
    except AgentError as exc:
        sys.stderr.write(f"endpoint-agent: {exc}\n")
        return EXIT_ERROR


def _bundle(args: argparse.Namespace, config: Config) -> int:
    from agent.governance.support import BundleRefused, write_bundle  # noqa: PLC0415 - detectors load here only

    try:
        written = write_bundle(config, args.out, args.log)
    except BundleRefused as exc:
        sys.stderr.write(f"endpoint-agent: {exc}\n")
        return EXIT_NOT_DONE
    _out(f"support bundle written: {len(written.members)} files, {written.size} bytes\n")
    return EXIT_OK


def _show(args: argparse.Namespace, config: Config, clock: Callable[[], float]) -> int:
    with EgressGate.open(config, clock) as gate, Analytics.open(config.state_dir, clock=clock) as analytics:
        decision = gate.allows(PURPOSE)
        days = analytics.days()
    doc: dict[str, Any] = {
        "purpose": PURPOSE,
        "allowed": decision.allowed,
        "state": decision.reason,
        "mechanism": {
            "epsilon_per_report": EPSILON,
            "daily_budget": EPSILON,
            "counters": len(COUNTERS),
            "report": "one counter sampled at random, one randomized bit (1-bit mean, local DP)",
        },
        "days": [
            {
                "day": d.day,
                "counters": dict(d.counters),
                "epsilon_spent": d.epsilon_spent,
                "reports": d.reports,
            }
            for d in days
        ],
    }
    if args.json:
        _out(json.dumps(doc, sort_keys=True) + "\n")
        return EXIT_OK
    lines = [
        f"Product analytics: {'on' if decision.allowed else 'off'} ({decision.reason})",
        f"Each report: {doc['mechanism']['report']}; ε = {EPSILON:g} per report, budget {EPSILON:g} per day",
    ]
    for day in doc["days"]:
        counted = ", ".join(f"{k} {v}" for k, v in sorted(day["counters"].items())) or "nothing counted"
        lines.append(f"{day['day']}: ε spent {day['epsilon_spent']:g}, reports {day['reports']}; {counted}")
    _out("\n".join(lines) + "\n")
    return EXIT_OK


def _send_now(config: Config, clock: Callable[[], float]) -> int:
    if not config.upstream.url:
        sys.stderr.write("endpoint-agent: no cloud is configured ([upstream] url); nothing to send to\n")
        return EXIT_NOT_DONE
    store, lock = Store(config.state_dir / "agent.db"), threading.Lock()

    def log_sent(recipient: str, purpose: str, kind: str, payload: bytes) -> None:
        with lock:
            store.log_sent(recipient, purpose, kind, payload)

    try:
        with (
            EgressGate.open(config, clock) as gate,
            Analytics.open(config.state_dir, clock=clock) as analytics,
        ):
            sender = sender_from_config(config, analytics, gate, log_sent)
            if sender is None:
                return EXIT_NOT_DONE
            try:
                result = sender.send_due()
            finally:
                sender.close()
    finally:
        store.close()
    _out(f"analytics: {result.reason}\n")
    codes = {"sent": EXIT_OK, "nothing_due": EXIT_OK, "not_allowed": EXIT_NOT_DONE}
    return codes.get(result.outcome, EXIT_ERROR)


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
