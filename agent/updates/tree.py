"""Rules directories on disk: collect one for a bundle, write one from a bundle, check that it loads.

Writing never follows a link and never replaces a file: every directory is created fresh inside a
directory the caller just made, and every file is opened with ``O_CREAT | O_EXCL | O_NOFOLLOW``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

from agent.engine import RuleSet, load_rules
from agent.errors import AgentError, RulesError
from agent.minimize import Policy
from agent.updates.manifest import ROOT_FILES, RULE_SUFFIXES, BundleError, check_name, shown

__all__ = ["check_tree", "collect_tree", "fsync_dir", "write_tree"]


def collect_tree(src_dir: Path) -> dict[str, bytes]:
    """Every rule, hash-list and policy file under ``src_dir`` (hidden entries skipped, links refused)."""
    if not src_dir.is_dir():
        raise RulesError(f"rules directory not found: {src_dir}")
    files: dict[str, bytes] = {}
    for root, dirs, names in os.walk(src_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in [*dirs, *sorted(names)]:
            path = Path(root) / name
            if path.is_symlink():
                raise RulesError(
                    f"{shown(path.relative_to(src_dir).as_posix())} is a link; bundles hold none"
                )
        for name in sorted(n for n in names if not n.startswith(".")):
            rel = (Path(root) / name).relative_to(src_dir).as_posix()
            if rel in ROOT_FILES or name.lower().endswith(RULE_SUFFIXES):
                _check_source_name(rel)
                files[rel] = (Path(root) / name).read_bytes()
    return files


def _check_source_name(rel: str) -> None:
    try:
        check_name(rel)
    except BundleError as exc:
        raise RulesError(f"cannot bundle {shown(rel)}: {exc.reason}") from exc


def write_tree(root: Path, files: Mapping[str, bytes]) -> None:
    """Write ``files`` (relative path to content) under the fresh, empty directory ``root``; fsync all."""
    made: set[Path] = {root}
    for rel in sorted(files):
        check_name(rel)
        target = root / rel
        for parent in reversed(target.relative_to(root).parents[:-1]):
            directory = root / parent
            if directory not in made:
                directory.mkdir(mode=0o755)
                made.add(directory)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as out:
            out.write(files[rel])
            out.flush()
            os.fsync(out.fileno())
    for directory in sorted(made, key=lambda p: len(p.parts), reverse=True):
        fsync_dir(directory)


def fsync_dir(directory: Path) -> None:
    """Flush a directory's entries to disk (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_tree(root: Path) -> RuleSet:
    """Compile the rules and parse the policy files under ``root``; any error refuses the bundle."""
    try:
        rules = load_rules(root)
        if (root / "policy.toml").is_file():
            Policy.load(root / "policy.toml")
        if (root / "purposes.toml").is_file():
            tomllib.loads((root / "purposes.toml").read_text(encoding="utf-8"))
    except (AgentError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BundleError("compile_error", _strip_root(str(exc), root)) from exc
    return rules


def _strip_root(message: str, root: Path) -> str:
    return message.replace(f"{root}{os.sep}", "").replace(str(root), "<bundle>")
