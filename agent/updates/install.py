"""Installing a verified bundle: versioned directories, an atomic ``current`` link, rollback.

Layout under ``<state dir>/rules/``::

    42/                 one directory per installed version: the rule files, manifest.json, manifest.sig
    41/
    current -> 42       what the service loads (``installed_rules_dir``); replaced with os.replace
    previous -> 41      what ``rollback`` returns to
    state.json          {"highest": 42, "withdrawn": [43]}: the high-water mark and rolled-back versions
    .lock               flock'd by every change, so the CLI and the service never interleave

``update`` refuses, before touching anything: a bundle that does not verify (see agent.updates.bundle),
a version not above the highest ever installed (a rollback or replay), a manifest older than
``max_age_days`` (a frozen feed) or more than a day in the future, and a minimum agent version above
this agent's. It then writes the files to a private staging directory, compiles the rules and parses
the policy there (a failure refuses the update and removes the staging directory), renames it to
``<version>/``, points ``previous`` at the old target and ``current`` at the new one. Only the current
and previous versions are kept.

``rollback`` points ``current`` back at ``previous`` (or, with no previous version, removes it, so the
configured or bundled rules apply again). The high-water mark stays: the rolled-back version, and
anything not above it, is never installed again; the vendor publishes a higher version instead.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog

from agent import __version__
from agent.engine import RuleSet
from agent.errors import ConfigError
from agent.updates.bundle import VerifiedBundle, read_bundle
from agent.updates.current import installed_rules_dir, read_link, rules_root
from agent.updates.keys import pinned_keys
from agent.updates.manifest import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    BundleError,
    Manifest,
    decode_manifest,
    parse_created,
    parse_version,
)
from agent.updates.settings import UpdateSettings
from agent.updates.tree import check_tree, fsync_dir, write_tree

__all__ = ["Installed", "RolledBack", "Status", "installed_rules_dir", "rollback", "status", "update"]

log = structlog.get_logger("endpoint-agent")
_FUTURE_SKEW = dt.timedelta(days=1)
_STATE = "state.json"


@dataclass(frozen=True, slots=True)
class Installed:
    """An update that went in."""

    version: int
    previous: int | None
    rules_version: str
    yara_rules: int
    files: int
    key_id: str


@dataclass(frozen=True, slots=True)
class RolledBack:
    """A rollback: from which version to which (None: back to the configured or bundled rules)."""

    withdrawn: int
    current: int | None


@dataclass(frozen=True, slots=True)
class Status:
    """What is installed, for ``rules status``."""

    current: int | None
    previous: int | None
    highest: int
    withdrawn: tuple[int, ...]
    created: str | None
    files: int


def update(
    source: Path | bytes, state_dir: Path, settings: UpdateSettings, *, now: dt.datetime | None = None
) -> Installed:
    """Verify, check and install a bundle, then swap it in; raise BundleError (nothing changed) if refused."""
    keys = pinned_keys(settings.pinned_keys)
    if not keys:
        raise ConfigError("no rules signing key is pinned (updates.pinned_keys); updates are refused")
    try:
        bundle = read_bundle(source, keys, settings.limits)
        _check_fresh(bundle.manifest, settings.max_age_days, now or dt.datetime.now(dt.UTC))
        _check_agent(bundle.manifest)
        root = rules_root(state_dir)
        root.mkdir(parents=True, exist_ok=True, mode=0o755)
        with _locked(root):
            installed = _install(root, bundle)
    except BundleError as exc:
        log.warning("rules_update_refused", code=exc.code)
        raise
    log.info("rules_update_installed", version=installed.version, rules_version=installed.rules_version)
    return installed


def _check_fresh(manifest: Manifest, max_age_days: int, now: dt.datetime) -> None:
    created = parse_created(manifest.created)
    if now - created > dt.timedelta(days=max_age_days):
        days = (now - created).days
        raise BundleError(
            "stale",
            f"the manifest was created {days} days ago; bundles older than {max_age_days} days are "
            "refused (a frozen or replayed feed)",
        )
    if created - now > _FUTURE_SKEW:
        raise BundleError("future", "the manifest was created more than a day from now; check the clock")


def _check_agent(manifest: Manifest) -> None:
    wanted, have = parse_version(manifest.min_agent_version), parse_version(__version__)
    if _padded(wanted) > _padded(have):
        raise BundleError(
            "agent_too_old", f"the bundle needs agent {manifest.min_agent_version}, this is {__version__}"
        )


def _padded(version: tuple[int, ...]) -> tuple[int, ...]:
    return (*version, *(0,) * (4 - len(version)))


def _install(root: Path, bundle: VerifiedBundle) -> Installed:
    version, state = bundle.manifest.version, _State.load(root)
    highest = _highest(root, state)
    if version <= highest:
        raise BundleError(
            "not_newer", f"version {version} is not above {highest}, the highest installed (rollback refused)"
        )
    rules = _stage(root, bundle)
    previous = read_link(root, "current")
    if previous is not None:
        _point(root, "previous", previous)
    _point(root, "current", str(version))
    fsync_dir(root)
    _State(version, state.withdrawn).save(root)
    _collect_garbage(root, {str(version), previous})
    return Installed(
        version=version,
        previous=int(previous) if previous else None,
        rules_version=rules.version,
        yara_rules=rules.yara_rules,
        files=len(bundle.files),
        key_id=bundle.key_id,
    )


def _stage(root: Path, bundle: VerifiedBundle) -> RuleSet:
    """Write and check the bundle in a staging directory, then rename it to ``<version>/``."""
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        meta = {MANIFEST_NAME: bundle.manifest_bytes, SIGNATURE_NAME: bundle.signature_doc}
        write_tree(staging, {**bundle.files, **meta})
        rules = check_tree(staging)
        staging.chmod(0o755)
        final = root / str(bundle.manifest.version)
        if final.exists():  # left by an install that stopped before its swap; never current
            shutil.rmtree(final)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return rules


def rollback(state_dir: Path) -> RolledBack:
    """Point ``current`` back at the previous version (or at no installed rules); keep the high-water mark."""
    root = rules_root(state_dir)
    if not root.is_dir():
        raise BundleError("no_previous", "no installed rules to roll back")
    with _locked(root):
        current = read_link(root, "current")
        if current is None:
            raise BundleError("no_previous", "no installed rules to roll back")
        previous = read_link(root, "previous")
        if previous is not None:
            check_tree(root / previous)
        state = _State.load(root)
        withdrawn = tuple(sorted({*state.withdrawn, int(current)}))
        _State(_highest(root, state), withdrawn).save(root)
        if previous is None:
            (root / "current").unlink()
        else:
            _point(root, "current", previous)
            (root / "previous").unlink()
        fsync_dir(root)
        _collect_garbage(root, {previous})
    log.info("rules_rolled_back", withdrawn=int(current), current=int(previous) if previous else None)
    return RolledBack(int(current), int(previous) if previous else None)


def status(state_dir: Path) -> Status:
    """The installed, previous and highest versions, and the current manifest's creation time."""
    root = rules_root(state_dir)
    state = _State.load(root)
    current, previous = read_link(root, "current"), read_link(root, "previous")
    manifest = _installed_manifest(root / current) if current else None
    return Status(
        current=int(current) if current else None,
        previous=int(previous) if previous else None,
        highest=_highest(root, state),
        withdrawn=state.withdrawn,
        created=manifest.created if manifest else None,
        files=len(manifest.files) if manifest else 0,
    )


def _installed_manifest(directory: Path) -> Manifest | None:
    try:
        return decode_manifest((directory / MANIFEST_NAME).read_bytes())
    except (OSError, BundleError):
        return None


# ---------------------------------------------------------------------- links, state, lock
def _point(root: Path, name: str, target: str) -> None:
    tmp = root / f".{name}.{secrets.token_hex(6)}"
    tmp.symlink_to(target)
    try:
        tmp.replace(root / name)  # atomic: readers see the old link or the new one
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _highest(root: Path, state: _State) -> int:
    linked = [int(v) for v in (read_link(root, "current"), read_link(root, "previous")) if v]
    return max([*linked, state.highest])


@dataclass(frozen=True, slots=True)
class _State:
    """The high-water mark and the rolled-back versions, kept in ``state.json``."""

    highest: int = 0
    withdrawn: tuple[int, ...] = ()

    @classmethod
    def load(cls, root: Path) -> _State:
        try:
            raw = json.loads((root / _STATE).read_text())
            return cls(int(raw["highest"]), tuple(int(v) for v in raw["withdrawn"]))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError, TypeError, KeyError):
            log.warning("rules_state_unreadable")  # the links still give a floor for the high-water mark
            return cls()

    def save(self, root: Path) -> None:
        tmp = root / f".{_STATE}.{secrets.token_hex(6)}"
        with tmp.open("x") as out:
            json.dump({"highest": self.highest, "withdrawn": list(self.withdrawn)}, out)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(root / _STATE)


def _collect_garbage(root: Path, keep: set[str | None]) -> None:
    """Remove versions other than ``keep`` and what an interrupted change left (call under the lock)."""
    for entry in root.iterdir():
        stale = entry.name.isdigit() and entry.name not in keep
        if (stale or entry.name.startswith(".staging-")) and not entry.is_symlink() and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name.startswith((".current.", ".previous.", f".{_STATE}.")):
            entry.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
