"""The ``endpoint-agent`` command line: parse, call the engine through a session, render.

Exit codes follow clamscan: 0 nothing found, 1 something found (malicious or suspicious), 2 an error
occurred and nothing was found. An object that could not be fully scanned (a limit) also gives 2
when nothing was found, so a script never reads "0" for a scan that was not complete.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

from agent import __version__, config
from agent.errors import AgentError, ConfigError
from agent.logs import Redactor, configure, get_logger
from agent.minimize import MasterSecret
from agent.model import Outcome, ScanRequest, Source
from agent.render import (
    Progress,
    Summary,
    outcome_json,
    print_outcome,
    print_summary,
    receipt,
    render_status,
)
from agent.sources import Walker

__all__ = ["main"]

EXIT_CLEAN, EXIT_FOUND, EXIT_ERROR = 0, 1, 2
_UPLOAD_WAIT = 30.0  # seconds a scan waits at most to deliver its records
_EXIT_NOT_RUNNING = 3  # as systemctl status and LSB init scripts say "not running"
_STDIN_CHUNK = 1 << 20


# Commands whose front-ends live with their packages: (module, registering function, help). They are
# imported only when used, so `--version`, `status` and `scan` do not load the governance, update and
# HTTP code; the top-level help lists them from this table.
_PLUGINS: dict[str, tuple[str, str, str]] = {
    "consent": (
        "agent.governance.commands",
        "add_parser",
        "purposes and consent: show, grant, withdraw, object, verify",
    ),
    "export": (
        "agent.governance.rights_commands",
        "add_parsers",
        "write everything this device holds about you",
    ),
    "forget": (
        "agent.governance.rights_commands",
        "add_parsers",
        "erase this install's data here and in the cloud",
    ),
    "purge": ("agent.governance.rights_commands", "add_parsers", "delete what is past its retention now"),
    "quarantine": (
        "agent.governance.rights_commands",
        "add_parsers",
        "quarantined files: add, list, restore, delete",
    ),
    "rules": ("agent.updates.commands", "add_parser", "signed rule bundles: build, verify, update, rollback"),
    "analytics": (
        "agent.governance.analytics_commands",
        "add_parsers",
        "anonymized product analytics: show, send-now",
    ),
    "support-bundle": (
        "agent.governance.analytics_commands",
        "add_parsers",
        "logs, config and status for support, checked for personal data",
    ),
}


def _plugin(command: str) -> ModuleType:
    return importlib.import_module(_PLUGINS[command][0])


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="endpoint-agent", description="Privacy-first endpoint scanning agent."
    )
    parser.add_argument("--version", action="version", version=f"endpoint-agent {__version__}")
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="agent.toml to use instead of the default"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    scan = sub.add_parser("scan", help="scan files, directories or standard input ('-')")
    scan.add_argument("paths", nargs="+", metavar="PATH")
    scan.add_argument(
        "--json", action="store_true", help="one JSON object per scanned object, then a summary"
    )
    scan.add_argument(
        "--receipt", action="store_true", help="print what would leave the device and what stayed"
    )
    scan.add_argument("--rules", type=Path, metavar="DIR", help="rules directory (default: bundled rules)")
    scan.add_argument("--jobs", type=int, metavar="N", help="worker processes (default: one per core)")
    scan.add_argument("--no-cache", action="store_true", help="ignore and do not update the verdict cache")
    scan.add_argument(
        "--no-upload", action="store_true", help="only queue records; do not deliver them at the end"
    )
    scan.add_argument(
        "--config", type=Path, metavar="FILE", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    conf = sub.add_parser("config", help="show the configuration in force, or an example file")
    conf.add_argument("action", choices=("show", "example"))
    sub.add_parser("run", help="run the background service in the foreground (for a service manager)")
    enroll = sub.add_parser("enroll", help="enrol with a security cloud and configure delivery to it")
    enroll.add_argument("url", help="https URL of the security cloud")
    enroll.add_argument("--product-key", required=True, help="the product key the cloud accepts")
    enroll.add_argument("--ca-file", default="", help="CA certificate to trust instead of the system store")
    enroll.add_argument("--pin-sha256", default="", help="base64 SHA-256 SPKI pin of the cloud's key")
    enroll.add_argument("--prefix-key", default="", help="base64 Ed25519 key that signs the reputation list")
    sent = sub.add_parser("sent", help="the transparency log: every payload that left this device")
    sent.add_argument("--json", action="store_true", help="one JSON object per payload")
    sent.add_argument("--limit", type=int, default=50, help="newest N payloads (default 50)")
    sub.add_parser("sweep", help="ask the running service to sweep the watched roots now")
    status = sub.add_parser("status", help="show what the running service is doing")
    status.add_argument("--json", action="store_true", help="the status as one JSON object")
    for name in ("config", "run", "sweep", "status", "enroll", "sent"):
        sub.choices[name].add_argument(
            "--config", type=Path, metavar="FILE", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    _add_plugins(sub, command)
    return parser


def _add_plugins(sub: argparse._SubParsersAction[argparse.ArgumentParser], command: str | None) -> None:
    """Register the real parser of the plugin command in use; a one-line entry for the others."""
    if command in _PLUGINS:
        module, register, _ = _PLUGINS[command]
        getattr(importlib.import_module(module), register)(sub)
    for name, (_module, _, text) in _PLUGINS.items():
        if name not in sub.choices:
            sub.add_parser(name, help=text, add_help=False)
    if command == "rules":  # the other plugins declare --config themselves
        sub.choices["rules"].add_argument(
            "--config", type=Path, metavar="FILE", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand word in ``argv`` (the first token that is not an option or its value)."""
    words = iter(argv)
    for word in words:
        if word == "--config":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def run() -> NoReturn:
    """The console entry point: :func:`main`, then leave without tearing the interpreter down.

    By the time :func:`main` returns, everything it opened is closed (stores, workers, sockets, the
    stdin spool). What normal interpreter shutdown adds is freeing every module and object one by
    one: about 50 ms that a user waits for on every command, a fifth of a cached scan. So the output
    is flushed and the process ends at once, unless another thread is still alive: then the normal
    exit runs and waits for it.
    """
    code = main()
    with suppress(BrokenPipeError):  # the reader went away: nothing more to deliver
        sys.stdout.flush()
        sys.stderr.flush()
    if threading.active_count() == 1:
        os._exit(code)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser(_command_of(argv)).parse_args(argv)
    try:
        cfg = config.load(args.config)
        if args.command == "config":
            print(config.show(cfg) if args.action == "show" else config.example())
            return EXIT_CLEAN
        if args.command in ("status", "sweep"):
            return _status(args, cfg)
        if args.command == "sent":
            return _sent(args, cfg)
        if args.command == "consent":
            return int(_plugin("consent").run(args, cfg))
        secret = MasterSecret.load_or_create(cfg.state_dir)
        configure(_log_level(args, cfg), cfg.log.format, Redactor(secret.key("logs")))
        if args.command == "enroll":
            return _enroll(args, cfg)
        if args.command in ("export", "forget", "purge", "quarantine", "analytics", "support-bundle"):
            return int(_plugin(args.command).run(args, cfg))
        if args.command == "rules":
            return int(_plugin("rules").run(args, cfg))
        if args.command == "run":
            from agent.service import Service  # noqa: PLC0415 - only the service loads its sources

            return Service(cfg, args.config).run()
        return _scan(args, cfg)
    except ConfigError as exc:
        print(f"endpoint-agent: configuration error: {exc}", file=sys.stderr)
    except AgentError as exc:
        print(f"endpoint-agent: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("endpoint-agent: interrupted", file=sys.stderr)
    except BrokenPipeError:  # the reader went away (``| head``): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except sqlite3.DatabaseError as exc:  # a damaged, foreign or busy agent.db: name it and the way out
        print(f"endpoint-agent: {_store_problem(exc)}", file=sys.stderr)
    except OSError as exc:  # a file the user named cannot be read or written: say which and why
        where = f": {exc.filename}" if exc.filename else ""
        print(f"endpoint-agent: {exc.strerror or type(exc).__name__}{where}", file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: a redacted report, exit 2
        get_logger().exception("internal_error", error=type(exc).__name__)
        print(
            f"endpoint-agent: internal error ({type(exc).__name__}); details are in the log", file=sys.stderr
        )
    return EXIT_ERROR


def _store_problem(exc: sqlite3.DatabaseError) -> str:
    """What to tell the user about an error of the state store: a damaged file, or a busy one."""
    store = config.home_dirs()[0] / "agent.db"
    if getattr(exc, "sqlite_errorname", "") in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
        return (
            f"the agent's store {store} is damaged ({exc}); move it aside and the agent starts a new one "
            "(its scan history, cache and queued records stay in the old file)"
        )
    return f"the agent's store {store} cannot be used now ({exc}); if another endpoint-agent uses it, retry"


def _log_level(args: argparse.Namespace, cfg: config.Config) -> str:
    """On a terminal a scan shows progress, findings and a summary: its log adds only warnings."""
    if args.command == "scan" and cfg.log.level == "info" and sys.stderr.isatty():
        return "warning"
    return cfg.log.level


def _status(args: argparse.Namespace, cfg: config.Config) -> int:
    from agent.control import query  # noqa: PLC0415 - keeps the other commands' start-up small
    from agent.service import control_path  # noqa: PLC0415

    try:
        info = query(control_path(cfg), args.command.upper())
    except AgentError as exc:
        info = {"running": False, "reason": str(exc)}
    if args.command == "sweep":
        print(info.get("sweep") or f"endpoint-agent service: not running ({info.get('reason')})")
        return EXIT_CLEAN if "sweep" in info else _EXIT_NOT_RUNNING
    if args.json:
        print(json.dumps(info, sort_keys=True))
    else:
        print(render_status(info))
    return EXIT_CLEAN if info.get("running") else _EXIT_NOT_RUNNING


def _scan(args: argparse.Namespace, cfg: config.Config) -> int:
    from agent.session import ScanSession, SessionOptions  # noqa: PLC0415 - keeps --version and config fast

    if args.jobs is not None:
        config.check_jobs(args.jobs, "--jobs")
    walker = Walker(source=Source.ON_DEMAND, exclude_dirs=frozenset({os.path.abspath(cfg.state_dir)}))
    summary = Summary()
    complete = False
    try:
        with ExitStack() as stack:
            reputation = _reputation(cfg, args, stack)
            options = SessionOptions(
                rules_dir=args.rules, jobs=args.jobs, use_cache=not args.no_cache, reputation=reputation
            )
            session = stack.enter_context(ScanSession(cfg, options))
            session.analytics.count_run()
            requests = stack.enter_context(_requests(args.paths, walker, cfg))
            progress = stack.enter_context(Progress(enabled=not args.json and sys.stderr.isatty()))
            for outcome in session.scan(requests):
                summary.add(outcome)
                progress.advance(outcome)
                _emit(outcome, args, progress)
            summary.skipped.update(walker.skipped)
            summary.queued = session.queued()
        complete = True
        if cfg.upstream.url and not args.no_upload:
            _deliver(cfg, summary)
        _finish(summary, session.rules.version, args)
    except BrokenPipeError:  # the reader went away (``| head``): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if not complete:  # what was found counts; a scan cut short is not "nothing found"
            return EXIT_FOUND if summary.found else EXIT_ERROR
    return _exit_code(summary)


def _reputation(
    cfg: config.Config, args: argparse.Namespace, stack: ExitStack
) -> Callable[[str], str | None] | None:
    """Private hash-prefix lookups, when a cloud and its prefix key are configured and uploads allowed."""
    if not (cfg.upstream.url and cfg.upstream.prefix_key) or args.no_upload:
        return None
    from agent.outbox import Store  # noqa: PLC0415 - only scans with an upstream load the client
    from agent.upstream import reputation_from_config  # noqa: PLC0415

    store = Store(cfg.state_dir / "agent.db")
    stack.callback(store.close)
    from agent.governance import EgressGate  # noqa: PLC0415

    gate = stack.enter_context(EgressGate.open(cfg))
    reputation = reputation_from_config(cfg, store.log_sent, gate.sending)
    if reputation is None:
        return None
    stack.callback(reputation.close)
    return reputation.check


def _deliver(cfg: config.Config, summary: Summary) -> None:
    """Send what the scan queued, waiting a bounded time; what is left goes with the next run."""
    from agent.governance import EgressGate  # noqa: PLC0415
    from agent.outbox import Store  # noqa: PLC0415 - only scans with an upstream load the client
    from agent.outbox.delivery import Deliverer, DeliverySettings  # noqa: PLC0415
    from agent.upstream import client_from_config  # noqa: PLC0415

    up = cfg.upstream
    settings = DeliverySettings(
        up.batch_max_records, up.batch_max_bytes, up.max_outbox_records, up.max_outbox_age
    )
    client = client_from_config(cfg)
    if client is None:
        return
    store = Store(cfg.state_dir / "agent.db")
    try:
        with EgressGate.open(cfg) as gate:
            deliverer = Deliverer(store, client, settings, gate=gate)
            report = deliverer.deliver_with_retries(time.monotonic() + _UPLOAD_WAIT)
        summary.delivered, summary.delivery_error = report.sent, report.error
        summary.queued = store.outbox_depth()
    finally:
        client.close()
        store.close()


def _enroll(args: argparse.Namespace, cfg: config.Config) -> int:
    from agent.upstream import enroll  # noqa: PLC0415

    path = enroll(
        cfg, args.url, args.product_key, ca_file=args.ca_file, pin=args.pin_sha256, prefix_key=args.prefix_key
    )
    print(f"enrolled with {args.url}; token stored in {path} (0600); [upstream] written to {cfg.config_file}")
    if _service_running(cfg):
        print(
            "the running service still delivers with its old settings: restart it to use these "
            "(its queued records are kept)"
        )
    return EXIT_CLEAN


def _service_running(cfg: config.Config) -> bool:
    from agent.control import query  # noqa: PLC0415 - only enroll asks
    from agent.service import control_path  # noqa: PLC0415

    try:
        return bool(query(control_path(cfg), "STATUS").get("running"))
    except AgentError:
        return False


def _sent(args: argparse.Namespace, cfg: config.Config) -> int:
    from agent.outbox import Store  # noqa: PLC0415

    store = Store(cfg.state_dir / "agent.db")
    try:
        entries = store.sent(max(1, args.limit))
    finally:
        store.close()
    for when, recipient, purpose, kind, payload in entries:
        body = json.loads(payload)
        item = {"time": when, "recipient": recipient, "purpose": purpose, "kind": kind, "payload": body}
        if args.json:
            print(json.dumps(item, sort_keys=True))
        else:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
            print(f"{stamp}  {recipient}  {purpose}  {kind}  {json.dumps(body, sort_keys=True)}")
    if not entries and not args.json:
        print("nothing has been sent from this device")
    return EXIT_CLEAN


def _emit(outcome: Outcome, args: argparse.Namespace, progress: Progress) -> None:
    if args.json:
        sys.stdout.write(json.dumps(outcome_json(outcome)) + "\n")
    else:
        print_outcome(outcome, progress)


def _finish(summary: Summary, rules_version: str, args: argparse.Namespace) -> None:
    if args.json:
        line: dict[str, Any] = {"summary": True, **summary.as_dict(rules_version)}
        if args.receipt:
            line["receipt"] = receipt(summary)
        sys.stdout.write(json.dumps(line) + "\n")
    else:
        print_summary(summary, rules_version, show_receipt=args.receipt)
    sys.stdout.flush()


def _exit_code(summary: Summary) -> int:
    if summary.found:
        return EXIT_FOUND
    if summary.errors or summary.unscanned:
        return EXIT_ERROR
    return EXIT_CLEAN


@contextmanager
def _requests(paths: Sequence[str], walker: Walker, cfg: config.Config) -> Iterator[Iterator[Any]]:
    """Requests for the named paths; ``-`` spools standard input to a private temp file first."""
    with ExitStack() as stack:
        spooled: dict[str, str] = {}
        if "-" in paths:
            spooled["-"] = stack.enter_context(_spool_stdin(cfg))
        yield _walk_with_stdin(paths, walker, spooled)


def _walk_with_stdin(paths: Sequence[str], walker: Walker, spooled: dict[str, str]) -> Iterator[Any]:
    for path in paths:
        if path == "-":
            yield ScanRequest(path=spooled["-"], source=Source.STREAM, display="-")
        else:
            yield from walker.walk([path])


@contextmanager
def _spool_stdin(cfg: config.Config) -> Iterator[str]:
    """Copy standard input (up to the file-size limit plus one byte) into a 0600 file, deleted after."""
    tmp_dir = cfg.state_dir / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="stdin-")
    try:
        budget = cfg.limits.max_file_size + 1
        with os.fdopen(fd, "wb") as out:
            while budget > 0 and (chunk := sys.stdin.buffer.read(min(_STDIN_CHUNK, budget))):
                out.write(chunk)
                budget -= len(chunk)
        yield name
    finally:
        Path(name).unlink(missing_ok=True)
