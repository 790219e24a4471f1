"""Rule loading: YARA-X sources and hash lists from one directory, compiled once.

The compiled rules travel to worker processes as bytes (``yara_x.Rules.serialize_into``), so each
worker makes its own ``Scanner`` on its own thread. Every file goes into its own namespace, so two
files may reuse a rule name. Compile errors name the file, line and column.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import yara_x

from agent.engine.hashlists import HashDb, parse_hash_bytes
from agent.errors import RulesError

__all__ = ["ENGINE_VERSION", "RuleSet", "load_rules"]


def _yara_x_version() -> str:
    try:
        return importlib.metadata.version("yara-x")
    except importlib.metadata.PackageNotFoundError:  # a frozen build without package metadata
        return "unknown"


ENGINE_VERSION = f"endpoint-agent-engine/1 yara-x/{_yara_x_version()}"
_YARA_SUFFIXES = (".yar", ".yara")
_HASH_SUFFIXES = (".hsb", ".hdb")
GLOBALS = {"member_name": ""}
_RULE_DECL = re.compile(r"^\s*(?:(?:private|global)\s+)*rule\s+\w+", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Compiled rules ready to ship to workers.

    Attributes:
        version: short hex digest of every rule file's name and content, and the engine version.
        yara: the compiled YARA-X rules, serialized.
        hashes: the hash signatures.
        yara_rules: number of YARA rules compiled.
    """

    version: str
    yara: bytes
    hashes: HashDb
    yara_rules: int

    def scanner(self) -> yara_x.Scanner:
        """Build a scanner for the calling thread (call once per worker process)."""
        rules = yara_x.Rules.deserialize_from(io.BytesIO(self.yara))
        return yara_x.Scanner(rules)


def load_rules(rules_dir: Path) -> RuleSet:
    """Compile every ``*.yar`` and load every ``*.hsb``/``*.hdb`` under ``rules_dir`` (recursively)."""
    if not rules_dir.is_dir():
        raise RulesError(f"rules directory not found: {rules_dir}")
    yar_files, hash_files = _collect(rules_dir)
    if not yar_files and not hash_files:
        raise RulesError(f"no rule files (*.yar, *.hsb, *.hdb) in {rules_dir}")
    sources = {_rel(p, rules_dir): _read(p, rules_dir) for p in yar_files}
    hash_data = {_rel(p, rules_dir): _read_bytes(p, rules_dir) for p in hash_files}
    version = _version(sources, hash_data)
    hashes = HashDb()
    for origin, data in hash_data.items():
        parse_hash_bytes(data, Path(origin).suffix, hashes, origin)
    count = sum(len(_RULE_DECL.findall(text)) for text in sources.values())
    return RuleSet(version=version, yara=_compile(sources), hashes=hashes, yara_rules=count)


def _collect(rules_dir: Path) -> tuple[list[Path], list[Path]]:
    yar: list[Path] = []
    hashes: list[Path] = []
    for root, dirs, files in os.walk(rules_dir):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            suffix = path.suffix.lower()
            if suffix in _YARA_SUFFIXES:
                yar.append(path)
            elif suffix in _HASH_SUFFIXES:
                hashes.append(path)
    return yar, hashes


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _read_bytes(path: Path, root: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise RulesError(f"{_rel(path, root)}: cannot read: {exc.strerror}") from exc


def _read(path: Path, root: Path) -> str:
    try:
        return _read_bytes(path, root).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RulesError(f"{_rel(path, root)}: not UTF-8 at byte {exc.start}") from exc


def _version(sources: dict[str, str], hash_files: dict[str, bytes]) -> str:
    digest = hashlib.sha256(ENGINE_VERSION.encode())
    for name, text in sorted(sources.items()):
        digest.update(b"\0Y" + name.encode() + b"\0" + text.encode())
    for name, data in sorted(hash_files.items()):
        digest.update(b"\0H" + name.encode() + b"\0" + data)
    return digest.hexdigest()[:16]


def _compile(sources: dict[str, str]) -> bytes:
    compiler = yara_x.Compiler()
    for name, value in GLOBALS.items():
        compiler.define_global(name, value)
    for origin, text in sources.items():
        compiler.new_namespace(origin)
        try:
            compiler.add_source(text, origin=origin)
        except yara_x.CompileError as exc:
            raise RulesError(f"rule compile error in {origin}:\n{exc}") from exc
    buf = io.BytesIO()
    compiler.build().serialize_into(buf)
    return buf.getvalue()
