"""Signed rule updates: bundles (build, verify), installation with rollback, the cloud poller, the CLI."""

from agent.updates.bundle import DEFAULT_LIMITS, BundleLimits, VerifiedBundle, build, read_bundle, verify
from agent.updates.fetch import Fetched, fetch_latest, fetch_url, rules_client
from agent.updates.install import Installed, RolledBack, Status, installed_rules_dir, rollback, status, update
from agent.updates.keys import generate_key, key_id, load_signing_key, pinned_keys, public_key_b64
from agent.updates.manifest import BundleError, FileEntry, Manifest
from agent.updates.poll import RulesPoller
from agent.updates.settings import UpdateSettings

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
