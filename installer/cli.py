"""The ``endpoint-agent-setup`` command line.

::

    endpoint-agent-setup [install] [--user | --system] [--prefix DIR] [--dry-run]
                         [--unattended ANSWERS] [--binary PATH] [--no-service] [--ages FILE]
    endpoint-agent-setup uninstall [--user | --system] [--prefix DIR] [--dry-run] [--yes]
    endpoint-agent-setup unit [--platform linux|macos|windows] [--user | --system] [--prefix DIR]

Exit codes: 0 done; 1 the install or uninstall failed (an install is rolled back); 2 a bad option,
answers file or age table; 3 setup cannot continue on this device; 4 uninstalled, but erasure of the
install's records upstream was not confirmed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from agent import __version__
from agent import config as agent_config
from agent.errors import AgentError
from agent.governance import load_purposes
from agent.logs import Redactor, configure
from installer.agegate import AgePolicy
from installer.install import EXIT_FAILED, EXIT_USAGE, Options, install, usage_error
from installer.layout import Layout, default_scope, make_layout
from installer.screens import Console, TerminalConsole
from installer.uninstall import uninstall
from installer.units import launchd_plist, macos_layout, systemd_unit, windows_paths, windows_service_script

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="endpoint-agent-setup", description="Install or uninstall endpoint-agent and its service."
    )
    parser.add_argument("--version", action="version", version=f"endpoint-agent-setup {__version__}")
    parser.add_argument("command", nargs="?", choices=("install", "uninstall", "unit"), default="install")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--user", dest="scope", action="store_const", const="user", help="install for this user"
    )
    scope.add_argument(
        "--system", dest="scope", action="store_const", const="system", help="system-wide (root)"
    )
    parser.add_argument(
        "--prefix", type=Path, metavar="DIR", help="put the binary, config and state under DIR"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="show every file it would write; write nothing"
    )
    parser.add_argument(
        "--unattended", type=Path, metavar="ANSWERS", help="answers file of a managed install"
    )
    parser.add_argument("--yes", action="store_true", help="uninstall: do not ask (needed off a terminal)")
    parser.add_argument("--binary", type=Path, metavar="PATH", help="the endpoint-agent binary to install")
    parser.add_argument(
        "--no-service",
        action="store_true",
        help="install no service unit; the self-test runs the agent as a child process",
    )
    parser.add_argument(
        "--ages", type=Path, metavar="FILE", help="minimum-age table instead of the bundled one"
    )
    parser.add_argument(
        "--platform",
        choices=("linux", "macos", "windows"),
        default="linux",
        help="for `unit`: which definition",
    )
    return parser


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    console = console or TerminalConsole()
    configure("warning", "auto", Redactor())  # the screens are the output; the agent's log goes to stderr
    try:
        layout = make_layout(args.scope or default_scope(), args.prefix, service=not args.no_service)
        if args.command == "unit":
            console.say(_unit(args, layout))
            return 0
        policy = AgePolicy.load(args.ages)
        if args.command == "uninstall":
            return uninstall(
                layout,
                policy,
                console,
                dry_run=args.dry_run,
                confirmed=args.yes,
                interactive=sys.stdin.isatty(),
            )
        purposes = load_purposes(
            agent_config.Config(state_dir=layout.state_dir, config_file=layout.config_file)
        )
        opts = Options(
            layout=layout,
            purposes=purposes,
            policy=policy,
            binary=args.binary,
            answers=args.unattended,
            dry_run=args.dry_run,
            service=not args.no_service,
        )
        return install(opts, console)
    except EOFError:
        console.say("\nSetup stopped: the input ended. Nothing was written.\n")
        return EXIT_FAILED
    except KeyboardInterrupt:
        console.say("\nSetup stopped. Nothing was written.\n")
        return EXIT_FAILED
    except AgentError as exc:
        return usage_error(console, exc) if args.command != "uninstall" else _failed(console, exc)


def _failed(console: Console, exc: AgentError) -> int:
    console.say(f"endpoint-agent-setup: {exc}\n")
    return EXIT_FAILED if not isinstance(exc, ValueError) else EXIT_USAGE


def _unit(args: argparse.Namespace, layout: Layout) -> str:
    """The service definition for ``--platform``, for this layout (nothing is written)."""
    if args.platform == "macos":
        return launchd_plist(macos_layout(layout)).decode()
    if args.platform == "windows":
        return windows_service_script(*windows_paths(str(args.prefix) if args.prefix else None))
    return systemd_unit(layout)


if __name__ == "__main__":
    sys.exit(main())
