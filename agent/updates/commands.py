"""``endpoint-agent rules ...``: the front-end of rule bundles.

::

    endpoint-agent rules keygen OUT                        new signing key (0600); prints the key to pin
    endpoint-agent rules build SRC --key K --out B [--version N] [--min-agent-version V] [--no-check]
    endpoint-agent rules verify B [--pinned-key KEY ...]   full check, nothing written
    endpoint-agent rules update B|URL                      verify, check, install, swap
    endpoint-agent rules rollback                          back to the previous version
    endpoint-agent rules status [--json]

Exit codes: 0 done; 1 the bundle or update was refused, or there is nothing to roll back (the reason
is on standard error); 2 a configuration or usage error. A running service picks installed rules up
on its next reload (SIGHUP).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from agent import __version__
from agent.config import Config
from agent.errors import AgentError, ConfigError
from agent.updates.bundle import build, read_bundle
from agent.updates.fetch import fetch_url
from agent.updates.install import installed_rules_dir, rollback, status, update
from agent.updates.keys import generate_key, key_id, pinned_keys, public_key_b64
from agent.updates.manifest import BundleError
from agent.updates.settings import UpdateSettings

__all__ = ["add_parser", "run"]

EXIT_OK, EXIT_REFUSED, EXIT_ERROR = 0, 1, 2


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``rules`` and its actions to the top-level parser's subparsers."""
    rules = subparsers.add_parser("rules", help="signed rule bundles: build, verify, update, rollback")
    sub = rules.add_subparsers(dest="rules_command", required=True)
    sub.add_parser("keygen", help="create a bundle signing key").add_argument("out", type=Path)
    make = sub.add_parser("build", help="bundle and sign a rules directory (vendor side)")
    make.add_argument("src", type=Path)
    make.add_argument("--key", type=Path, required=True, help="Ed25519 signing key (PEM, 0600)")
    make.add_argument("--out", type=Path, required=True, help="bundle file to write")
    make.add_argument("--version", type=int, help="bundle version (default: seconds since the epoch)")
    make.add_argument("--min-agent-version", help="oldest agent that may install it (default: this one)")
    make.add_argument("--no-check", action="store_true", help="do not compile the rules first")
    check = sub.add_parser("verify", help="check a bundle completely; write nothing")
    check.add_argument("bundle", type=Path)
    check.add_argument("--pinned-key", action="append", default=[], help="base64 public key (repeatable)")
    sub.add_parser("update", help="install a bundle from a file or https URL").add_argument("source")
    sub.add_parser("rollback", help="return to the previously installed rules")
    sub.add_parser("status", help="installed versions").add_argument("--json", action="store_true")


def run(args: argparse.Namespace, config: Config, settings: UpdateSettings | None = None) -> int:
    """Run one ``rules`` action; returns the exit code."""
    settings = settings or UpdateSettings.from_config(config)
    actions = {
        "keygen": _keygen,
        "build": _build,
        "verify": _verify,
        "update": _update,
        "rollback": _rollback,
        "status": _status,
    }
    try:
        return actions[args.rules_command](args, config, settings)
    except BundleError as exc:
        _err(str(exc))
        return EXIT_REFUSED
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_ERROR
    except AgentError as exc:  # rules that do not compile at build time, an unreachable cloud
        _err(str(exc))
        return EXIT_REFUSED


def _keygen(args: argparse.Namespace, _config: Config, _settings: UpdateSettings) -> int:
    key = generate_key(args.out)
    _out(f"key id {key_id(key)}; pin this public key: {public_key_b64(key)}")
    return EXIT_OK


def _build(args: argparse.Namespace, _config: Config, _settings: UpdateSettings) -> int:
    manifest = build(
        args.src,
        args.key,
        args.out,
        args.version,
        min_agent_version=args.min_agent_version or __version__,
        check=not args.no_check,
    )
    _out(f"built rules bundle version {manifest.version} with {len(manifest.files)} files")
    return EXIT_OK


def _verify(args: argparse.Namespace, _config: Config, settings: UpdateSettings) -> int:
    keys = pinned_keys(args.pinned_key or settings.pinned_keys)
    if not keys:
        raise ConfigError("no key to verify with: pass --pinned-key or set updates.pinned_keys")
    bundle = read_bundle(args.bundle, keys, settings.limits)
    m = bundle.manifest
    _out(
        f"OK: version {m.version}, created {m.created}, {len(m.files)} files, "
        f"signed by key {bundle.key_id}, needs agent {m.min_agent_version}"
    )
    return EXIT_OK


def _update(args: argparse.Namespace, config: Config, settings: UpdateSettings) -> int:
    source: Path | bytes = Path(args.source)
    if args.source.startswith("https://"):
        source = fetch_url(args.source, config, settings.limits.max_bundle_bytes)
    elif "://" in args.source:
        raise ConfigError("a rules URL must be an https:// URL")
    done = update(source, config.state_dir, settings)
    was = f" (was {done.previous})" if done.previous else ""
    _out(f"installed rules version {done.version}{was}: {done.yara_rules} YARA rules, {done.files} files")
    return EXIT_OK


def _rollback(_args: argparse.Namespace, config: Config, _settings: UpdateSettings) -> int:
    done = rollback(config.state_dir)
    now = f"version {done.current}" if done.current else "the configured rules (none installed)"
    _out(f"rolled back from version {done.withdrawn} to {now}; {done.withdrawn} will not be reinstalled")
    return EXIT_OK


def _status(args: argparse.Namespace, config: Config, _settings: UpdateSettings) -> int:
    info = dataclasses.asdict(status(config.state_dir))
    info["rules_dir"] = str(installed_rules_dir(config.state_dir) or "")
    if args.json:
        _out(json.dumps(info, sort_keys=True))
        return EXIT_OK
    for name, value in info.items():
        _out(f"{name}: {value if value not in (None, (), '') else '-'}")
    return EXIT_OK


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


def _err(line: str) -> None:
    sys.stderr.write(f"endpoint-agent: {line}\n")
