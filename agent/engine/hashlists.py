"""ClamAV hash signature lists: ``.hdb`` (``md5:size:Name``) and ``.hsb`` (``sha1|sha256:size:Name``).

The size may be ``*`` (any size), as ClamAV allows for ``.hsb``. A fourth field (ClamAV's minimum
functionality level) is accepted and ignored. Errors name the file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from agent.errors import RulesError

__all__ = ["HashDb", "HashEntry", "parse_hash_bytes", "parse_hash_list"]

_HEX = re.compile(r"[0-9a-fA-F]+")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,127}")
_ALGOS = {32: "md5", 40: "sha1", 64: "sha256"}
_ALLOWED = {".hdb": ("md5",), ".hsb": ("sha1", "sha256")}


class HashEntry(msgspec.Struct, frozen=True, array_like=True):
    """One hash signature: the detection name and the exact size it applies to (None for any)."""

    name: str
    size: int | None


@dataclass(slots=True)
class HashDb:
    """Hash signatures by algorithm, then by lower-case hex digest."""

    by_algo: dict[str, dict[str, list[HashEntry]]] = field(
        default_factory=lambda: {"md5": {}, "sha1": {}, "sha256": {}},
    )
    # Sizes at which any md5/sha1 entry applies; None inside means "any size" (then always hash).
    sizes: dict[str, set[int | None]] = field(default_factory=lambda: {"md5": set(), "sha1": set()})

    def __len__(self) -> int:
        return sum(len(table) for table in self.by_algo.values())

    def add(self, algo: str, digest: str, entry: HashEntry) -> None:
        """Add one signature."""
        self.by_algo[algo].setdefault(digest, []).append(entry)
        if algo in self.sizes:
            self.sizes[algo].add(entry.size)

    def wants(self, algo: str, size: int) -> bool:
        """Whether an object of ``size`` bytes needs an ``algo`` digest (md5/sha1 are computed only then)."""
        sizes = self.sizes.get(algo)
        if sizes is None:
            return algo == "sha256" and bool(self.by_algo["sha256"])
        return size in sizes or None in sizes

    def lookup(self, algo: str, digest: str, size: int) -> list[str]:
        """Return the names of signatures matching ``digest`` at ``size``."""
        entries = self.by_algo[algo].get(digest, ())
        return [e.name for e in entries if e.size is None or e.size == size]


def parse_hash_list(path: Path, db: HashDb, origin: str) -> int:
    """Parse one ``.hdb``/``.hsb`` file into ``db``; return the number of entries added."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RulesError(f"{origin}: cannot read hash list: {exc}") from exc
    return parse_hash_bytes(data, path.suffix, db, origin)


def parse_hash_bytes(data: bytes, suffix: str, db: HashDb, origin: str) -> int:
    """Parse the content of a ``.hdb``/``.hsb`` file (named by ``suffix``) into ``db``."""
    allowed = _ALLOWED[suffix.lower()]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RulesError(f"{origin}: cannot read hash list: {exc}") from exc
    count = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        algo, digest, entry = _parse_line(line, f"{origin}:{lineno}")
        if algo not in allowed:
            raise RulesError(f"{origin}:{lineno}: {algo} hash not allowed in {suffix} files")
        db.add(algo, digest, entry)
        count += 1
    return count


def _parse_line(line: str, where: str) -> tuple[str, str, HashEntry]:
    parts = line.split(":")
    if len(parts) not in (3, 4):
        raise RulesError(f"{where}: expected HASH:SIZE:NAME, got {len(parts)} fields")
    digest, size_text, name = parts[0].lower(), parts[1], parts[2]
    algo = _ALGOS.get(len(digest))
    if algo is None or not _HEX.fullmatch(digest):
        raise RulesError(f"{where}: hash must be 32, 40 or 64 hex digits")
    if size_text == "*":
        size = None
    elif size_text.isdigit() and size_text.isascii() and len(size_text) <= 19:  # up to 2**63: a file size
        size = int(size_text)
    else:
        raise RulesError(f"{where}: size must be a number or '*'")
    if not _NAME.fullmatch(name):
        raise RulesError(f"{where}: bad signature name (letters, digits, '.', '_', '-'; up to 128)")
    return algo, digest, HashEntry(name=name, size=size)
