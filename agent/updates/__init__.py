"""Signed rule updates: bundles (build, verify), installation with rollback, the cloud poller, the CLI.

The names below load on first use (PEP 562): every scan asks which rules are in force
(:mod:`agent.updates.current`), and that must not import the verifier, crypto and HTTP client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.updates.bundle import DEFAULT_LIMITS, BundleLimits, VerifiedBundle, build, read_bundle, verify
    from agent.updates.fetch import Fetched, fetch_latest, fetch_url, rules_client
    from agent.updates.install import (
        Installed,
        RolledBack,
        Status,
        installed_rules_dir,
        rollback,
        status,
        update,
    )
    from agent.updates.keys import generate_key, key_id, load_signing_key, pinned_keys, public_key_b64
    from agent.updates.manifest import BundleError, FileEntry, Manifest
    from agent.updates.poll import RulesPoller
    from agent.updates.settings import UpdateSettings

_HOME = {
    **dict.fromkeys(
        ("DEFAULT_LIMITS", "BundleLimits", "VerifiedBundle", "build", "read_bundle", "verify"), "bundle"
    ),
    **dict.fromkeys(("Fetched", "fetch_latest", "fetch_url", "rules_client"), "fetch"),
    **dict.fromkeys(("Installed", "RolledBack", "Status", "rollback", "status", "update"), "install"),
    "installed_rules_dir": "current",
    **dict.fromkeys(("generate_key", "key_id", "load_signing_key", "pinned_keys", "public_key_b64"), "keys"),
    **dict.fromkeys(("BundleError", "FileEntry", "Manifest"), "manifest"),
    "RulesPoller": "poll",
    "UpdateSettings": "settings",
}


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"agent.updates.{home}"), name)


__all__ = [
    "DEFAULT_LIMITS",
    "BundleError",
    "BundleLimits",
    "Fetched",
    "FileEntry",
    "Installed",
    "Manifest",
    "RolledBack",
    "RulesPoller",
    "Status",
    "UpdateSettings",
    "VerifiedBundle",
    "build",
    "fetch_latest",
    "fetch_url",
    "generate_key",
    "installed_rules_dir",
    "key_id",
    "load_signing_key",
    "pinned_keys",
    "public_key_b64",
    "read_bundle",
    "rollback",
    "rules_client",
    "status",
    "update",
    "verify",
]
