"""``endpoint-agent consent show | grant PURPOSE | withdraw PURPOSE | object PURPOSE | verify``.

``show`` lists every purpose with its legal basis, state, data, recipients and countries, and how to
stop it. ``grant`` prints the notice (controller, purpose, data, recipients, how to withdraw) and
records the SHA-256 of exactly that text. ``withdraw`` and ``object`` are one command each, with no
question asked, and purge the purpose's queued records before they return. ``verify`` checks the
ledger's chain, seals and head. Exit codes: 0 done, 1 the ledger does not verify, 2 an error.
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
from agent.governance.consent import CHANNELS, ConsentLedger, Withdrawal
from agent.governance.gate import EgressGate
from agent.governance.purposes import Purpose, Recipient, load_purposes, render_notice

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_UNVERIFIED", "add_parser", "run"]

EXIT_OK, EXIT_UNVERIFIED, EXIT_ERROR = 0, 1, 2
_Handler = Callable[[argparse.Namespace, EgressGate], int]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:  # noqa: ANN401 - argparse's subparsers type is private
    """Add the ``consent`` command and its actions to ``subparsers``; return its parser."""
    consent = subparsers.add_parser(
        "consent", help="purposes, legal bases and your consent: show, grant, withdraw, object, verify"
    )
    consent.add_argument(
        "--config", type=Path, metavar="FILE", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    actions = consent.add_subparsers(dest="consent_action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="every purpose, its legal basis, recipients and state")
    show.add_argument("purpose", nargs="?", help="show this purpose's full notice")
    show.add_argument("--json", action="store_true", help="one JSON document")
    grant = actions.add_parser("grant", help="consent to a purpose (or lift an objection)")
    grant.add_argument("purpose")
    grant.add_argument("--yes", action="store_true", help="agree without a prompt (the notice is printed)")
    grant.add_argument("--channel", choices=CHANNELS, default="cli", help=argparse.SUPPRESS)
    for name, text in (
        ("withdraw", "withdraw consent; queued data of the purpose is deleted at once"),
        ("object", "object to a legitimate-interest purpose; queued data is deleted at once"),
    ):
        stop = actions.add_parser(name, help=text)
        stop.add_argument("purpose")
        stop.add_argument("--channel", choices=CHANNELS, default="cli", help=argparse.SUPPRESS)
    verify = actions.add_parser("verify", help="check the consent ledger's chain and seals")
    verify.add_argument("--json", action="store_true", help="the result as one JSON object")
    return consent  # type: ignore[no-any-return]


def run(args: argparse.Namespace, config: Config, clock: Callable[[], float] = time.time) -> int:
    """Run one ``consent`` action; return the exit code."""
    try:
        purposes = load_purposes(config)
        with ConsentLedger.open(config.state_dir, purposes, clock) as ledger:
            return _HANDLERS[args.consent_action](args, EgressGate(purposes, ledger))
    except AgentError as exc:
        sys.stderr.write(f"endpoint-agent: {exc}\n")
        return EXIT_ERROR


def _show(args: argparse.Namespace, gate: EgressGate) -> int:
    purposes = gate.purposes
    if args.purpose:
        purpose = purposes.get(args.purpose)
        doc = _purpose_doc(purpose, gate)
        if args.json:
            _out(json.dumps({**doc, "notice": render_notice(purposes, purpose)}, sort_keys=True))
        else:
            _out(render_notice(purposes, purpose) + f"\nState: {doc['state']}\n")
        return EXIT_OK
    check = gate.ledger.verify()
    if args.json:
        document = {
            "policy_version": purposes.version,
            "controller": {"name": purposes.controller.name, "contact": purposes.controller.contact},
            "purposes": [_purpose_doc(p, gate) for p in purposes.purposes.values()],
            "ledger": {"verified": check.ok, "entries": [e.as_dict() for e in gate.ledger.entries()]},
        }
        _out(json.dumps(document, sort_keys=True))
        return EXIT_OK
    controller = purposes.controller
    lines = [
        f"Purposes (policy version {purposes.version}); controller: {controller.name} <{controller.contact}>"
    ]
    for purpose in purposes.purposes.values():
        lines.extend(["", *_purpose_lines(purpose, gate)])
    ledger = "verified" if check.ok else "DOES NOT VERIFY: run `endpoint-agent consent verify`"
    lines.extend(["", f"Consent ledger: {check.entries} entries, {ledger}"])
    _out("\n".join(lines) + "\n")
    return EXIT_OK


def _purpose_doc(purpose: Purpose, gate: EgressGate) -> dict[str, Any]:
    decision = gate.allows(purpose.name)
    return {
        "name": purpose.name,
        "basis": purpose.basis,
        "article": purpose.article,
        "description": purpose.description,
        "allowed": decision.allowed,
        "state": decision.reason,
        "payloads": {kind: list(fields) for kind, fields in purpose.payloads.items()},
        "recipients": [
            {"name": r.name, "category": r.category, "country": r.country, "transfer": r.transfer or None}
            for r in purpose.recipients
        ],
        "retention_days": purpose.retention_days,
        "max_consent_age_days": purpose.max_consent_age_days,
        "digest": purpose.digest,
        "how_to_stop": _how_to_stop(purpose),
    }


def _purpose_lines(purpose: Purpose, gate: EgressGate) -> list[str]:
    decision = gate.allows(purpose.name)
    data = "; ".join(f"{kind}: {', '.join(fields)}" for kind, fields in purpose.payloads.items())
    lines = [
        f"{purpose.name}: {'ON' if decision.allowed else 'OFF'}",
        f"  basis:      {purpose.basis.replace('_', ' ')} ({purpose.article})",
        f"  what for:   {purpose.description}",
        f"  data:       {data or 'none declared yet (nothing of this purpose can leave)'}",
        f"  recipients: {'; '.join(_recipient(r) for r in purpose.recipients) or 'none declared'}",
        f"  retention:  {purpose.retention_days} days",
        f"  state:      {decision.reason}",
        f"  to stop:    {_how_to_stop(purpose)}",
    ]
    if not decision.allowed and purpose.basis != "contract":
        lines.append(f"  to allow:   endpoint-agent consent grant {purpose.name}")
    return lines


def _recipient(recipient: Recipient) -> str:
    transfer = f", transfer: {recipient.transfer}" if recipient.transfer else ""
    return f"{recipient.name} ({recipient.category}) in {recipient.country}{transfer}"


def _how_to_stop(purpose: Purpose) -> str:
    if purpose.basis == "consent":
        return f"endpoint-agent consent withdraw {purpose.name}"
    if purpose.basis == "legitimate_interest":
        return f"endpoint-agent consent object {purpose.name}"
    return "part of the service you use; it ends when the agent is uninstalled"


def _grant(args: argparse.Namespace, gate: EgressGate) -> int:
    purpose = gate.purposes.get(args.purpose)
    if purpose.basis == "contract":
        raise AgentError(f"{purpose.name} rests on the contract; there is no consent to give")
    notice = render_notice(gate.purposes, purpose)
    _out(notice + "\n")
    if not args.yes:
        if not sys.stdin.isatty():
            raise AgentError("not on a terminal: add --yes to agree to the notice printed above")
        answer = input(f"Type 'yes' to agree to {purpose.name}: ")
        if answer.strip().lower() != "yes":
            _out("Nothing was recorded.\n")
            return EXIT_OK
    entry = gate.ledger.grant(purpose.name, notice, args.channel)
    done = "Consent recorded" if purpose.basis == "consent" else "Objection lifted"
    _out(
        f"{done} for {purpose.name} (ledger entry {entry.seq}, notice sha256 {entry.notice_sha256}).\n"
        f"To stop: {_how_to_stop(purpose)}\n"
    )
    return EXIT_OK


def _withdraw(args: argparse.Namespace, gate: EgressGate) -> int:
    return _stopped(gate.ledger.withdraw(args.purpose, args.channel), "Consent withdrawn")


def _object(args: argparse.Namespace, gate: EgressGate) -> int:
    return _stopped(gate.ledger.object_to(args.purpose, args.channel), "Objection recorded")


def _stopped(result: Withdrawal, what: str) -> int:
    purpose = result.entry.purpose
    _out(
        f"{what} for {purpose} (ledger entry {result.entry.seq}); {result.purged} queued records deleted.\n"
        f"Nothing of {purpose} is sent from now on.\n"
        f"To allow it again: endpoint-agent consent grant {purpose}\n"
    )
    if result.unfinished_sends:
        sys.stderr.write(
            f"endpoint-agent: {result.unfinished_sends} send(s) of {purpose} that began before this command"
            " had not finished when it gave up waiting\n"
        )
        return EXIT_ERROR
    return EXIT_OK


def _verify(args: argparse.Namespace, gate: EgressGate) -> int:
    check = gate.ledger.verify()
    if args.json:
        _out(
            json.dumps({"verified": check.ok, "entries": check.entries, "problems": list(check.problems)})
            + "\n"
        )
    elif check.ok:
        _out(f"Consent ledger: {check.entries} entries; chain, seals and head verified.\n")
    else:
        _out(f"Consent ledger: {check.entries} entries; DOES NOT VERIFY:\n")
        _out("".join(f"  {problem}\n" for problem in check.problems))
    return EXIT_OK if check.ok else EXIT_UNVERIFIED


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


_HANDLERS: dict[str, _Handler] = {
    "show": _show,
    "grant": _grant,
    "withdraw": _withdraw,
    "object": _object,
    "verify": _verify,
}
