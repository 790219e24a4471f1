"""``endpoint-agent export | forget | purge | quarantine``: rights, retention and quarantine commands.

::

    endpoint-agent export --out FILE              everything held about you, one JSON document (0600)
    endpoint-agent forget [--yes]                 erase upstream, wipe this device, shred the keys
    endpoint-agent purge                          delete every expired entry of every store now
    endpoint-agent quarantine add PATH...         move files into the encrypted quarantine
    endpoint-agent quarantine list [--json]       what is quarantined, and where it came from
    endpoint-agent quarantine restore ID [--to P] put a file back, byte-identical; never overwrites
    endpoint-agent quarantine delete ID           destroy a quarantined file

Exit codes: 0 done; 1 not all of it was done (erasures pending, a file refused or not found); 2 an
error (nothing was done). ``forget`` refuses while the service runs: it holds the keys in memory.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.config import Config
from agent.errors import AgentError
from agent.governance.history import History
from agent.governance.quarantine import Quarantine, QuarantineError
from agent.governance.retention import pseudonyms_used, purge
from agent.governance.rights import ClientFactory, export, export_document, forget
from agent.governance.vault import DataKey

__all__ = ["COMMANDS", "EXIT_ERROR", "EXIT_OK", "EXIT_PARTIAL", "add_parsers", "run"]

COMMANDS = ("export", "forget", "purge", "quarantine")
EXIT_OK, EXIT_PARTIAL, EXIT_ERROR = 0, 1, 2


def add_parsers(subparsers: Any) -> None:  # noqa: ANN401 - argparse's subparsers type is private
    """Add ``export``, ``forget``, ``purge`` and ``quarantine`` to the top-level ``subparsers``."""
    out = subparsers.add_parser("export", help="everything this device holds about you, as one JSON file")
    out.add_argument("--out", required=True, metavar="FILE", help="file to write (0600); '-' for stdout")
    gone = subparsers.add_parser("forget", help="erase your data upstream and on this device; shred the keys")
    gone.add_argument("--yes", action="store_true", help="do not ask (for scripts and uninstallers)")
    subparsers.add_parser("purge", help="delete every expired entry of every local store now")
    quarantine = subparsers.add_parser(
        "quarantine", help="the encrypted quarantine: add, list, restore, delete"
    )
    actions = quarantine.add_subparsers(dest="quarantine_action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="move files into the quarantine, encrypted")
    add.add_argument("paths", nargs="+", metavar="PATH")
    add.add_argument("--detection", action="append", default=[], help="detection name to record (repeatable)")
    listing = actions.add_parser("list", help="quarantined files and where they came from")
    listing.add_argument("--json", action="store_true", help="one JSON object per item")
    restore = actions.add_parser("restore", help="put a file back byte-identical; never overwrites")
    restore.add_argument("id")
    restore.add_argument("--to", type=Path, metavar="PATH", help="restore here instead of the original path")
    actions.add_parser("delete", help="destroy a quarantined file").add_argument("id")
    for name in COMMANDS:
        subparsers.choices[name].add_argument(
            "--config", type=Path, metavar="FILE", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )


def run(
    args: argparse.Namespace,
    config: Config,
    client_factory: ClientFactory | None = None,
    clock: Callable[[], float] = time.time,
) -> int:
    """Run one of :data:`COMMANDS`; return the exit code."""
    try:
        if args.command == "export":
            return _export(args, config, clock)
        if args.command == "forget":
            return _forget(args, config, client_factory, clock)
        if args.command == "purge":
            _out(purge(config, clock()).render())
            return EXIT_OK
        return _quarantine(args, config, clock)
    except AgentError as exc:
        sys.stderr.write(f"endpoint-agent: {exc}\n")
        return EXIT_ERROR


def _export(args: argparse.Namespace, config: Config, clock: Callable[[], float]) -> int:
    if args.out == "-":
        _out(json.dumps(export_document(config, clock()), indent=1, sort_keys=True))
        return EXIT_OK
    counts = export(config, Path(args.out), clock())
    summary = ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in counts.items())
    _out(f"Wrote {args.out} (mode 0600): {summary}.")
    return EXIT_OK


def _forget(
    args: argparse.Namespace, config: Config, factory: ClientFactory | None, clock: Callable[[], float]
) -> int:
    if _service_running(config):
        raise AgentError("the service is running and holds the keys: stop it first, then run forget")
    if not args.yes:
        _out(_forget_notice(config, clock()))
        if not sys.stdin.isatty():
            raise AgentError("not on a terminal: add --yes to forget without a question")
        if input("Type 'forget' to erase all of it: ").strip().lower() != "forget":
            _out("Nothing was erased.")
            return EXIT_OK
    report = forget(config, factory, clock())
    _out(report.render())
    if report.cloud.pending:
        _out("Erasure requests that could not be sent are queued; the service retries them.")
        return EXIT_PARTIAL
    return EXIT_OK


def _forget_notice(config: Config, now: float) -> str:
    key = DataKey.load_or_create(config.state_dir)
    with (
        History(config.state_dir / "agent.db", key) as history,
        Quarantine(config.state_dir, key) as quarantine,
    ):
        scans, items = history.count(), len(quarantine.entries())
    pseudonyms = len(pseudonyms_used(config, now))
    return (
        "forget erases what this install holds about you:\n"
        f"  - asks the security cloud to erase every record under this install's {pseudonyms} pseudonyms;\n"
        f"  - deletes {scans} scan history entries, the verdict cache, the outbox, the transparency log,\n"
        "    the consent ledger and log files on this device;\n"
        f"  - destroys {items} quarantined files (they are NOT restored);\n"
        "  - crypto-shreds the data key and the master secret."
    )


def _service_running(config: Config) -> bool:
    from agent.control import query  # noqa: PLC0415 - only forget asks the service
    from agent.service import control_path  # noqa: PLC0415

    try:
        query(control_path(config), "STATUS")
    except AgentError:
        return False
    return True


def _quarantine(args: argparse.Namespace, config: Config, clock: Callable[[], float]) -> int:
    with Quarantine.open(config, clock) as quarantine:
        action = args.quarantine_action
        if action == "add":
            return _add(args, quarantine)
        if action == "list":
            return _list(args, quarantine)
        if action == "restore":
            where = quarantine.restore(args.id, args.to)
            _out(f"Restored {args.id} to {where}.")
            return EXIT_OK
        if not quarantine.delete(args.id):
            raise QuarantineError(f"no quarantined item {args.id!r}")
        _out(f"Destroyed {args.id}.")
        return EXIT_OK


def _add(args: argparse.Namespace, quarantine: Quarantine) -> int:
    code = EXIT_OK
    for path in args.paths:
        try:
            item = quarantine.add(path, tuple(args.detection))
        except QuarantineError as exc:
            sys.stderr.write(f"endpoint-agent: {path}: {exc}\n")
            code = EXIT_PARTIAL
            continue
        _out(f"Quarantined {path} as {item.id} ({item.size} bytes, encrypted).")
    return code


def _list(args: argparse.Namespace, quarantine: Quarantine) -> int:
    items = quarantine.entries()
    for item in items:
        if args.json:
            _out(json.dumps(item.as_dict(), sort_keys=True))
            continue
        added = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(item.added))
        where = item.path if item.path is not None else f"(unreadable: {item.unreadable})"
        names = ", ".join(item.detections) or "-"
        _out(f"{item.id}  {added}  {item.size:>10}  {where}  {names}")
    if not items and not args.json:
        _out("the quarantine is empty")
    return EXIT_OK


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
