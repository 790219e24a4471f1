"""Rule loading: YARA-X sources and hash lists from one directory, compiled once.

The compiled rules travel to worker processes as bytes (``yara_x.Rules.serialize_into``), so each
worker makes its own ``Scanner`` on its own thread. Every file goes into its own namespace, so two
files may reuse a rule name. Compile errors name the file, line and column.

Compiling a thousand rules and parsing ten thousand hash signatures takes longer than a scan of an
unchanged tree, so the result can be kept in a cache directory (:class:`RulesCache`), one file per
rules version (the digest of every source and of the engine version). Compiled YARA-X rules hold
native code, so a cached file carries an HMAC-SHA256 of its body under a key only this install
has: one that is damaged, of another format or written by anyone else is ignored and rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import msgspec
import yara_x

from agent.engine.hashlists import HashDb, HashEntry, parse_hash_bytes
from agent.errors import RulesError

__all__ = ["ENGINE_VERSION", "SEVERITIES", "RuleSet", "RulesCache", "load_rules"]


def _yara_x_version() -> str:
    """The installed yara-x release, from the name of its ``dist-info`` directory beside the package.

    Asking ``importlib.metadata`` instead (its import, then a search of every ``sys.path`` entry)
    costs about 45 ms in a bare interpreter and 10 ms of a scan's start; it is asked only where no
    such directory is found.
    """
    beside = Path(yara_x.__file__).parent.parent
    for info in sorted(beside.glob("yara_x-*.dist-info")):
        return info.name.removeprefix("yara_x-").removesuffix(".dist-info")
    import importlib.metadata  # noqa: PLC0415 - the slow way, for unusual installs

    try:
        return importlib.metadata.version("yara-x")
    except importlib.metadata.PackageNotFoundError:  # a frozen build without package metadata
        return "unknown"


ENGINE_VERSION = f"endpoint-agent-engine/1 yara-x/{_yara_x_version()}"
_YARA_SUFFIXES = (".yar", ".yara")
_HASH_SUFFIXES = (".hsb", ".hdb")
GLOBALS = {"member_name": ""}
_RULE_DECL = re.compile(r"^\s*(?:(?:private|global)\s+)*rule\s+\w+", re.MULTILINE)
# A rule's ``severity`` meta is one of these (the policy maps each to a verdict and an action).
SEVERITIES = ("critical", "high", "medium", "low")
# YARA source as tokens: strings and comments (kept apart, so that "//" in a string is no comment) and
# a severity meta's start; its value is the token that follows.
_YARA_TOKENS = re.compile(
    r'(?P<string>"(?:[^"\\\n]|\\.)*")|(?P<comment>//[^\n]*|/\*.*?\*/)|(?P<severity>\bseverity\s*=\s*)',
    re.DOTALL,
)
_META_VALUE = re.compile(r'"((?:[^"\\\n]|\\.)*)"|([^\s"]+)')
_CACHE_FORMAT = b"endpoint-agent compiled rules 3\n"  # 3: severities checked when compiled
_CACHE_KEEP = 3  # compiled versions kept: the one in force and the last few (a rollback is quick)


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


@dataclass(frozen=True, slots=True)
class RulesCache:
    """Where compiled rule sets are kept between starts, and the key that authenticates them."""

    directory: Path
    key: bytes


def load_rules(rules_dir: Path, cache: RulesCache | None = None) -> RuleSet:
    """Compile every ``*.yar`` and load every ``*.hsb``/``*.hdb`` under ``rules_dir`` (recursively).

    With ``cache``, rules compiled before from the very same files are taken from there, and freshly
    compiled ones are kept there.
    """
    if not rules_dir.is_dir():
        raise RulesError(f"rules directory not found: {rules_dir}")
    yar_files, hash_files = _collect(rules_dir)
    if not yar_files and not hash_files:
        raise RulesError(f"no rule files (*.yar, *.hsb, *.hdb) in {rules_dir}")
    sources = {_rel(p, rules_dir): _read(p, rules_dir) for p in yar_files}
    hash_data = {_rel(p, rules_dir): _read_bytes(p, rules_dir) for p in hash_files}
    version = _version(sources, hash_data)
    cached = _from_cache(cache, version) if cache is not None else None
    if cached is not None:
        return cached
    hashes = HashDb()
    for origin, data in hash_data.items():
        parse_hash_bytes(data, Path(origin).suffix, hashes, origin)
    count = sum(len(_RULE_DECL.findall(text)) for text in sources.values())
    ruleset = RuleSet(version=version, yara=_compile(sources), hashes=hashes, yara_rules=count)
    if cache is not None:
        _to_cache(cache, ruleset)
    return ruleset


class _Compiled(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """A compiled rule set as kept in the cache directory (the hash tables as :class:`HashDb` holds them)."""

    version: str
    yara: bytes
    yara_rules: int
    by_algo: dict[str, dict[str, list[HashEntry]]]
    sizes: dict[str, set[int | None]]


def _cache_file(cache_dir: Path, version: str) -> Path:
    return cache_dir / f"rules-{version}.bin"


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, _CACHE_FORMAT + body, hashlib.sha256).digest()


def _from_cache(cache: RulesCache, version: str) -> RuleSet | None:
    """The rule set compiled earlier for ``version``; None when there is none, or not one we wrote."""
    try:
        blob = _cache_file(cache.directory, version).read_bytes()
    except OSError:
        return None
    body_at = len(_CACHE_FORMAT) + 32  # format line, HMAC of format line and body, body
    head, mac, body = blob[: len(_CACHE_FORMAT)], blob[len(_CACHE_FORMAT) : body_at], blob[body_at:]
    if head != _CACHE_FORMAT or not hmac.compare_digest(_mac(cache.key, body), mac):
        _warn("rules_cache_ignored", reason="damaged or not written by this install")
        return None
    try:
        compiled = msgspec.msgpack.decode(body, type=_Compiled)
    except msgspec.DecodeError:
        _warn("rules_cache_ignored", reason="unreadable")
        return None
    if compiled.version != version:
        return None
    hashes = HashDb(by_algo=compiled.by_algo, sizes=compiled.sizes)
    if hashes.by_algo.keys() != HashDb().by_algo.keys() or hashes.sizes.keys() != HashDb().sizes.keys():
        _warn("rules_cache_ignored", reason="unreadable")
        return None
    return RuleSet(version=version, yara=compiled.yara, hashes=hashes, yara_rules=compiled.yara_rules)


def _to_cache(cache: RulesCache, rules: RuleSet) -> None:
    """Keep ``rules`` for the next start (best effort: a read-only state dir only costs time)."""
    hashes = rules.hashes
    body = msgspec.msgpack.encode(
        _Compiled(rules.version, rules.yara, rules.yara_rules, hashes.by_algo, hashes.sizes)
    )
    target = _cache_file(cache.directory, rules.version)
    try:
        cache.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache.directory, prefix=".rules-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(_CACHE_FORMAT + _mac(cache.key, body) + body)
            Path(tmp).replace(target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _prune(cache.directory, keep=target)
    except OSError as exc:
        _warn("rules_cache_not_written", reason=exc.strerror or type(exc).__name__)


def _warn(event: str, **fields: object) -> None:
    """Log a warning; structlog (and rich under it) is imported here because workers import this module."""
    import structlog  # noqa: PLC0415 - only the parent loads rules, and so only it ever logs here

    structlog.get_logger("endpoint-agent").warning(event, **fields)


def _prune(cache_dir: Path, keep: Path) -> None:
    """Remove all but the newest few compiled versions (and always keep ``keep``)."""
    found = sorted(cache_dir.glob("rules-*.bin"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in [p for p in found if p != keep][_CACHE_KEEP - 1 :]:
        with contextlib.suppress(OSError):
            old.unlink()


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


def _check_severities(origin: str, text: str) -> None:
    """Refuse a ``severity`` meta outside :data:`SEVERITIES`: a typo must not change a verdict silently.

    Strings and comments are skipped as YARA reads them; a value that is not a string (``severity =
    5``) is refused too.
    """
    for token in _YARA_TOKENS.finditer(text):
        if token.lastgroup != "severity":
            continue
        value = _META_VALUE.match(text, token.end())
        written = value.group(1) if value is not None and value.group(1) is not None else None
        if written is None or written.lower() not in SEVERITIES:
            line = text.count("\n", 0, token.start()) + 1
            shown = repr(written) if written is not None else (value.group(2) if value else "nothing")
            raise RulesError(
                f"rule metadata error in {origin}:{line}: severity {shown} is not one of "
                f"{', '.join(SEVERITIES)}"
            )


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
        _check_severities(origin, text)
    buf = io.BytesIO()
    compiler.build().serialize_into(buf)
    return buf.getvalue()
