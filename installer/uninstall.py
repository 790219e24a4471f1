"""``endpoint-agent-setup uninstall``: stop the service, request erasure, shred the keys, remove the state.

What the install wrote is read from its receipt. Erasure goes through the agent's own ``forget``
(``agent.governance.rights.forget``): every pseudonym this install used is erased upstream, or the
report says which requests are still pending and why. When this build has no ``forget``, the output
says that erasure was not requested. Only the age gate's retry-block marker may stay, while its
block lasts, and the output says where.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent import config as agent_config
from agent.errors import AgentError
from installer.agegate import MARKER_NAME, AgePolicy
from installer.keys import DATA_KEY, MASTER_KEY, shred
from installer.layout import Layout
from installer.screens import Console
from installer.services import ChildService, Systemd

__all__ = ["EXIT_ERASURE_UNCONFIRMED", "uninstall"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ERASURE_UNCONFIRMED = 0, 1, 2, 4


def uninstall(
    layout: Layout,
    policy: AgePolicy,
    console: Console,
    dry_run: bool = False,
    clock: Callable[[], float] = time.time,
    *,
    confirmed: bool = False,
    interactive: bool = False,
) -> int:
    """Remove the install described by ``layout``'s receipt; return the exit code.

    Uninstalling erases: unless ``confirmed`` (``--yes``), it asks on a terminal (``interactive``)
    and refuses elsewhere, as ``endpoint-agent forget`` does.
    """
    receipt = _read_receipt(layout.receipt)
    if receipt is None:
        console.say(f"No endpoint-agent installation found (no receipt at {layout.receipt}).\n")
        return EXIT_FAILED
    layout = _layout_from(receipt, layout)
    manager = (
        Systemd(layout.scope) if receipt.get("service_manager", "").startswith("systemd") else ChildService()
    )
    if dry_run:
        console.say("Dry run: nothing was changed. " + _plan(layout, manager.name))
        return EXIT_OK
    if not confirmed:
        if not interactive:
            console.say(
                "Uninstalling erases this install's records and keys for good; off a terminal it needs "
                "--yes. Nothing was changed.\n"
            )
            return EXIT_USAGE
        console.say(_plan(layout, manager.name))
        if console.ask("Type yes to uninstall: ").strip().lower() != "yes":
            console.say("Nothing was changed.\n")
            return EXIT_FAILED
    lines = [*manager.remove(layout)]
    erased, report = _erase(layout)
    lines.append(report)
    lines += [
        f"crypto-shredded {layout.state_dir / name}"
        for name in (MASTER_KEY, DATA_KEY)
        if shred(layout.state_dir / name)
    ]
    lines += _remove_files(layout, receipt)
    kept = _markers(layout, policy, clock())
    console.say("endpoint-agent was uninstalled.\n" + "".join(f"  {line}\n" for line in lines) + kept)
    return EXIT_OK if erased else EXIT_ERASURE_UNCONFIRMED


def _read_receipt(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise AgentError(f"the install receipt {path} cannot be read: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("receipt") != 1:
        raise AgentError(f"the install receipt {path} is not one this setup wrote")
    return doc


def _layout_from(receipt: dict[str, Any], layout: Layout) -> Layout:
    """The layout the receipt recorded (the install may have been made with other defaults)."""
    return dataclasses.replace(
        layout,
        scope="system" if receipt.get("scope") == "system" else "user",
        binary=Path(receipt["binary"]),
        config_file=Path(receipt["config_file"]),
        state_dir=Path(receipt["state_dir"]),
        unit_file=Path(receipt["unit_file"]),
    )


def _plan(layout: Layout, manager: str) -> str:
    steps = [
        f"stop and remove the service ({manager}); remove {layout.unit_file}",
        "request erasure of this install's records from the security cloud (as `endpoint-agent forget`)",
        f"crypto-shred {layout.state_dir / MASTER_KEY} and {layout.state_dir / DATA_KEY}",
        f"remove {layout.state_dir} (all but an age retry-block marker that still applies)",
        f"remove {layout.config_file} and {layout.binary}",
    ]
    return "Uninstall would:\n" + "".join(f"  {s}\n" for s in steps)


def _erase(layout: Layout) -> tuple[bool, str]:
    """Ask the cloud to erase this install's records; return (confirmed, what happened)."""
    try:
        from agent.governance.rights import forget  # noqa: PLC0415 - not every build has it
    except ImportError:
        return False, (
            "ERASURE NOT REQUESTED: this build of the agent has no `forget` (agent.governance.rights);"
            " records the security cloud holds stay there until its retention period ends"
        )
    cfg = _agent_config(layout)
    try:
        report = forget(cfg)
    except (AgentError, OSError) as exc:
        return (
            False,
            f"ERASURE NOT CONFIRMED: forget failed ({exc}); the cloud keeps records until its retention ends",
        )
    text = "erasure (as `endpoint-agent forget`):\n    " + report.render().replace("\n", "\n    ")
    if report.cloud.pending:
        return (
            False,
            text + "\n  ERASURE NOT CONFIRMED for the pending pseudonyms above: no retry after uninstall",
        )
    return True, text


def _agent_config(layout: Layout) -> agent_config.Config:
    """The installed agent's config, with the install's state dir."""
    try:
        cfg = agent_config.load(layout.config_file)
    except AgentError:
        cfg = agent_config.Config(state_dir=layout.state_dir, config_file=layout.config_file)
    return dataclasses.replace(cfg, state_dir=layout.state_dir)


def _remove_files(layout: Layout, receipt: dict[str, Any]) -> list[str]:
    """Remove the state (but the marker), the config, the binary and the directories the install made."""
    done = []
    if layout.state_dir.is_dir():
        for entry in layout.state_dir.iterdir():
            if entry.name != MARKER_NAME:
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        done.append(f"removed the state in {layout.state_dir}")
    for path in (layout.config_file, layout.binary):
        if path.exists() or path.is_symlink():
            path.unlink()
            done.append(f"removed {path}")
    for directory in sorted((Path(d) for d in receipt.get("created_dirs", [])), key=lambda p: -len(p.parts)):
        try:
            directory.rmdir()
        except FileNotFoundError:
            continue
        except OSError:  # not empty: something not ours, or the marker
            continue
        done.append(f"removed {directory}")
    return done


def _markers(layout: Layout, policy: AgePolicy, now: float) -> str:
    """Drop marker copies whose block ended; say where the ones that still apply stay."""
    marker, period = layout.marker, policy.retry_block_seconds
    marker.clear_expired(now, period)
    until = marker.blocked_until(now, period)
    kept = [p for p in marker.paths if p.exists()]
    if until is None or not kept:
        return "Nothing of endpoint-agent is left on this device.\n"
    when = dt.datetime.fromtimestamp(until, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"Left in place: the age check's retry-block marker ({', '.join(map(str, kept))}), until {when}.\n"
        "It holds only that time and the age policy version; nothing else of endpoint-agent is left.\n"
    )
