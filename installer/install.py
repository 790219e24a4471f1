"""The install: check, ask (or read the answers file), then write everything in one transaction.

Order: the answers file and the age policy are checked; a retry block from a failed age check stops
setup; the preflight finds an existing install, a prefix that is not writable, a missing binary or an
absent service manager before anything is asked or written. Then the screens (or the answers), then
the transaction: directories, the binary, the config, the master secret and the data key, the consent
ledger, the receipt, the service unit, the self-test. Any failure rolls back what was written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from agent import __version__
from agent.errors import AgentError
from agent.governance import ConsentLedger, Purposes
from installer.agegate import AgePolicy
from installer.answers import Answers, load_answers, optional_purposes
from installer.keys import DATA_KEY, MASTER_KEY, create_data_key, create_master_secret
from installer.layout import Layout
from installer.screens import (
    BLOCKED,
    REFUSAL,
    Choice,
    Console,
    age_screen,
    choice_screen,
    necessary_screen,
    purpose_text,
)
from installer.services import ChildService, Systemd
from installer.transaction import InstallError, Transaction

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_REFUSED", "EXIT_USAGE", "Options", "install"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3
log = structlog.get_logger("endpoint-agent")
_PRIVATE_TMP = (Path("/tmp"), Path("/var/tmp"))  # noqa: S108 - directories the unit hides, not used as temp


@dataclass(frozen=True, slots=True)
class Options:
    """What the command line asked for."""

    layout: Layout
    purposes: Purposes
    policy: AgePolicy
    binary: Path | None = None
    answers: Path | None = None
    dry_run: bool = False
    service: bool = True


@dataclass(frozen=True, slots=True)
class _Decisions:
    age_text: str
    attested_by: str
    choices: tuple[Choice, ...]


Manager = Systemd | ChildService


def install(opts: Options, console: Console, clock: Callable[[], float] = time.time) -> int:
    """Run the whole install; return the exit code."""
    answers = load_answers(opts.answers, opts.purposes) if opts.answers else None
    layout, manager = opts.layout, _manager(opts)
    if _blocked(opts, console, clock()):
        return EXIT_REFUSED
    source = _binary_source(opts.binary)
    problems = preflight(layout, manager, source)
    if problems and not opts.dry_run:
        console.say("".join(f"Setup stopped: {p}\n" for p in problems) + "Nothing was written.\n")
        return EXIT_FAILED
    decisions = _decide(opts, console, answers, clock)
    if decisions is None:
        return EXIT_REFUSED
    tx = Transaction(dry_run=opts.dry_run)
    try:
        _apply(tx, opts, manager, source, decisions)
    except (InstallError, KeyboardInterrupt) as exc:
        undone = tx.rollback()
        reason = str(exc) if isinstance(exc, InstallError) else "interrupted"
        log.warning("install_rolled_back", steps=len(undone), error=type(exc).__name__)
        console.say(f"\nSetup failed: {reason}\nRolled back:\n" + "".join(f"  {u}\n" for u in undone))
        console.say("Nothing of the install is left.\n")
        return EXIT_FAILED
    tx.commit()
    log.info("install_finished", scope=layout.scope, dry_run=opts.dry_run, service=opts.service)
    if opts.dry_run:
        _say_plan(console, tx.plan, problems)
    else:
        console.say(summary(layout, manager, decisions))
    return EXIT_OK


def _manager(opts: Options) -> Manager:
    return Systemd(opts.layout.scope) if opts.service else ChildService()


def _blocked(opts: Options, console: Console, now: float) -> bool:
    """Whether an earlier failed age check still blocks setup (restoring a copy of the marker that went).

    The block holds for unattended installs too; their administrator is told until when.
    """
    marker, period = opts.layout.marker, opts.policy.retry_block_seconds
    until = marker.blocked_until(now, period)
    if until is None:
        return False
    if not opts.dry_run and marker.missing():
        marker.write(until, opts.policy.version)
    console.say(BLOCKED + "\n")
    if opts.answers is not None:
        when = dt.datetime.fromtimestamp(until, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        console.say(f"An age check on this device failed; setup is blocked until {when}.\n")
    return True


def _binary_source(binary: Path | None) -> Path | None:
    """The agent binary to install: ``--binary``, else the one beside a frozen setup, else on PATH."""
    if binary is not None:
        return binary.expanduser().absolute()
    if getattr(sys, "frozen", False):
        return Path(sys.executable).with_name("endpoint-agent")
    found = shutil.which("endpoint-agent")
    return Path(found) if found else None


def preflight(layout: Layout, manager: Manager, source: Path | None) -> list[str]:
    """Everything that would stop the install, found before anything is asked or written."""
    problems = [
        f"endpoint-agent is already installed here ({path} exists); run `endpoint-agent-setup uninstall`"
        " with the same options first"
        for path in layout.installed_paths
        if path.exists() or path.is_symlink()
    ][:1]
    if source is None:
        problems.append("no endpoint-agent binary to install: pass --binary PATH")
    elif not (source.is_file() and os.access(source, os.X_OK)):
        problems.append(f"the binary {source} is not an executable file")
    for target in {
        layout.binary.parent,
        layout.config_file.parent,
        layout.state_dir,
        layout.unit_file.parent,
    }:
        existing = next(p for p in (target, *target.parents) if p.exists())
        if not os.access(existing, os.W_OK | os.X_OK):
            problems.append(f"{existing} is not writable (needed for {target}); choose another --prefix")
    absent = manager.absent()
    if absent is not None:
        problems.append(f"{absent}, so the service cannot be installed; --no-service installs without it")
    elif isinstance(manager, Systemd) and any(p in _PRIVATE_TMP for p in layout.binary.parents):
        problems.append(
            "the unit's PrivateTmp=yes hides a prefix under /tmp from the service; choose another"
        )
    return list(dict.fromkeys(problems))


def _decide(
    opts: Options, console: Console, answers: Answers | None, clock: Callable[[], float]
) -> _Decisions | None:
    """The age check and the choices: from the screens, or from the answers file."""
    names = optional_purposes(opts.purposes)
    if answers is not None:
        console.say(f"Unattended install; answers from {opts.answers}.\n")
        age_text = (
            f"Age attested by the organisation for country {answers.country}: {answers.attestation}"
            f" (age policy version {opts.policy.version})"
        )
        choices = tuple(
            Choice(n, answers.choices[n], purpose_text(opts.purposes, n, i, len(names)))
            for i, n in enumerate(names, 1)
        )
        for choice in choices:
            console.say(
                f"{choice.text}{'y' if choice.on else ''}\n  (answer from the answers file: {_on(choice)})\n"
            )
        return _Decisions(age_text, "organisation", choices)
    passed = age_screen(console, opts.policy, lambda: _local_date(clock()))
    if passed is None:
        _refuse(opts, console, clock())
        return None
    necessary_screen(console, opts.purposes)
    choices = tuple(choice_screen(console, opts.purposes, n, i, len(names)) for i, n in enumerate(names, 1))
    return _Decisions(passed, "user", choices)


def _local_date(now: float) -> dt.date:
    """Today in the user's own calendar (local time), which is how a birthday is counted."""
    return dt.datetime.fromtimestamp(now, dt.UTC).astimezone().date()


def _refuse(opts: Options, console: Console, now: float) -> None:
    until = now + opts.policy.retry_block_seconds
    if not opts.dry_run:
        opts.layout.marker.write(until, opts.policy.version)
    console.say("\n" + REFUSAL + "\n")


def _on(choice: Choice) -> str:
    return "on" if choice.on else "off"


def _apply(tx: Transaction, opts: Options, manager: Manager, source: Path | None, d: _Decisions) -> None:
    layout = opts.layout
    tx.mkdir(layout.binary.parent)
    tx.mkdir(layout.config_file.parent)
    tx.mkdir(layout.state_dir, 0o700)
    tx.mkdir(layout.state_dir / "tmp", 0o700)
    tx.mkdir(layout.unit_file.parent)
    tx.copy(
        source,
        layout.binary,
        0o755,
        f"the agent binary, a copy of {source}" if source else "the agent binary",
    )
    tx.write(layout.config_file, config_text(layout).encode(), 0o644, "the agent's configuration")
    state = layout.state_dir
    tx.files(
        [state / MASTER_KEY],
        f"create {state / MASTER_KEY} (0600): the master secret, 256 random bits",
        lambda: create_master_secret(state),
    )
    tx.files(
        [state / DATA_KEY],
        f"create {state / DATA_KEY} (0600): the data key, 256 random bits",
        lambda: create_data_key(state),
    )
    entries: dict[str, int] = {}
    ledger_files = [state / f"agent.db{suffix}" for suffix in ("", "-wal", "-shm")]
    plan = _ledger_plan(opts.purposes, state, d)
    tx.files(ledger_files, plan, lambda: entries.update(_record(opts.purposes, state, d)))
    receipt = _receipt(layout, manager, d, entries, opts.policy.version, tx.created_dirs)
    tx.write(layout.receipt, receipt.encode(), 0o600, "the install receipt (what uninstall removes)")
    manager.install(tx, layout)
    tx.action(
        f"self-test: PING on {layout.clamd_socket} answers PONG", lambda: manager.selftest(layout), None, ""
    )


def _ledger_plan(purposes: Purposes, state: Path, d: _Decisions) -> str:
    steps = ["age_check_passed", *(f"{c.purpose}: {_entry(purposes, c)}" for c in d.choices)]
    return f"create {state / 'agent.db'} (0600): the consent ledger with {'; '.join(steps)}"


def _entry(purposes: Purposes, choice: Choice) -> str:
    """The ledger entry a choice makes: a grant, an objection, or none (no consent given)."""
    if choice.on:
        return "grant"
    return "object" if purposes.get(choice.purpose).basis == "legitimate_interest" else "none (no consent)"


def _record(purposes: Purposes, state: Path, d: _Decisions) -> dict[str, int]:
    """Write the age check and every choice to the consent ledger; return the entry numbers."""
    seqs: dict[str, int] = {}
    with ConsentLedger.open(state, purposes) as ledger:
        seqs["install"] = ledger.age_check_passed("installer", d.age_text).seq
        for choice in d.choices:
            basis = purposes.get(choice.purpose).basis
            if choice.on:
                seqs[choice.purpose] = ledger.grant(choice.purpose, choice.text, "installer").seq
            elif basis == "legitimate_interest":
                seqs[choice.purpose] = ledger.object_to(choice.purpose, "installer").entry.seq
    return seqs


def _receipt(  # noqa: PLR0917 - private, called once
    layout: Layout, manager: Manager, d: _Decisions, seqs: dict[str, int], version: int, dirs: list[Path]
) -> str:
    """The install receipt: paths, the service manager, and each choice with the SHA-256 of its screen."""
    doc = {
        "receipt": 1,
        "installer_version": __version__,
        "installed_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "scope": layout.scope,
        "service_manager": manager.name,
        "binary": str(layout.binary),
        "config_file": str(layout.config_file),
        "state_dir": str(layout.state_dir),
        "unit_file": str(layout.unit_file),
        "created_dirs": [str(p) for p in dirs],
        "age_check": {
            "by": d.attested_by,
            "age_policy_version": version,
            "text_sha256": hashlib.sha256(d.age_text.encode()).hexdigest(),
            "ledger_entry": seqs.get("install"),
        },
        "choices": [
            {"purpose": c.purpose, "on": c.on, "text_sha256": c.sha256, "ledger_entry": seqs.get(c.purpose)}
            for c in d.choices
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def config_text(layout: Layout) -> str:
    """The ``agent.toml`` an install writes (``endpoint-agent config example`` lists every option)."""
    lines = [
        f"# endpoint-agent configuration, written by endpoint-agent-setup {__version__}.",
        "# Every option with its default and meaning: endpoint-agent config example",
        "",
        "[log]",
        'format = "json"',
        "",
    ]
    if layout.scope == "system":
        lines += [
            "[watch]",
            "# A system-wide scanner watches and sweeps the users' homes.",
            'roots = ["/home"]',
            "",
        ]
    return "\n".join(lines)


def _say_plan(console: Console, plan: list[str], problems: list[str]) -> None:
    console.say("\nDry run: nothing was written. An install would:\n" + "".join(f"  {p}\n" for p in plan))
    if problems:
        console.say(
            "A real install would stop before writing anything:\n" + "".join(f"  {p}\n" for p in problems)
        )


def summary(layout: Layout, manager: Manager, d: _Decisions) -> str:
    """Where everything is, and how to change or undo it."""
    if isinstance(manager, Systemd):
        service = f"{layout.unit_file.name} ({manager.name}), enabled and running"
        start = ""
    else:
        service = "not installed (--no-service); the self-test ran it as a child process and stopped it"
        start = (
            f"  start it with:   ENDPOINT_AGENT_HOME={layout.state_dir} {layout.binary}"
            f" --config {layout.config_file} run\n"
        )
    choices = ", ".join(f"{c.purpose} {_on(c)}" for c in d.choices) or "none"
    return (
        "\nendpoint-agent is installed.\n"
        f"  binary:          {layout.binary}\n"
        f"  config:          {layout.config_file}\n"
        f"  state dir:       {layout.state_dir} (0700)\n"
        f"  keys:            {layout.state_dir / MASTER_KEY}, {layout.state_dir / DATA_KEY} (0600)\n"
        f"  consent ledger:  {layout.state_dir / 'agent.db'}\n"
        f"  receipt:         {layout.receipt}\n"
        f"  unit file:       {layout.unit_file}\n"
        f"  service:         {service}\n"
        f"{start}"
        f"  self-test:       PING on {layout.clamd_socket} answered PONG\n"
        f"  your choices:    {choices}\n"
        "  change them:     endpoint-agent consent show | grant | withdraw | object\n"
        "  uninstall:       endpoint-agent-setup uninstall (with the same options)\n"
    )


def usage_error(console: Console, exc: AgentError) -> int:
    """Report a bad answers file, age table or option; return the usage exit code."""
    console.say(f"endpoint-agent-setup: {exc}\n")
    return EXIT_USAGE
