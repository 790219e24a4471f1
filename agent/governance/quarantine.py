"""Quarantine: a detected file moved into the state dir, encrypted, so it cannot be run or indexed.

``<state dir>/quarantine/<id>`` holds the content sealed with the data key in 1 MiB frames:
``EAQ1`` then, per frame, a 4-byte big-endian length and a sealed chunk whose associated data names
the item, the frame's index and whether it is the last (so frames cannot be reordered, dropped,
cut off or moved between items). The ``quarantine`` table in ``agent.db`` holds the id, the time it
was added and the size in the clear; the original path, mode, owner, modification time, SHA-256 and
detection names are one sealed value. Nothing here talks to the network: quarantine never uploads.

:meth:`Quarantine.add` reads the file through a descriptor opened without following links (regular
files only), writes the sealed copy, records it, and only then unlinks the original, after checking
that the path still names the file that was read. :meth:`Quarantine.restore` writes the content back
next to the target, checks its SHA-256, restores mode, times and (as root) owner, and links it into
place, so an existing file is never overwritten. Items expire per ``[retention] quarantine_days``.

The policy hook: ``[actions]`` in ``rules/policy.toml`` maps a rule severity to ``report`` (the
default) or ``quarantine``; :class:`QuarantineAction` applies it to a session's outcome.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import stat
import struct
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Self

import msgspec
import structlog

from agent.config import Config
from agent.errors import AgentError, ConfigError
from agent.governance.vault import DataKey, UnsealError, connect, transaction
from agent.model import Outcome, VerdictKind

__all__ = [
    "ACTIONS",
    "QUARANTINE_DIR",
    "Quarantine",
    "QuarantineAction",
    "QuarantineError",
    "QuarantinedItem",
    "parse_actions",
    "wants_quarantine",
]

log = structlog.get_logger("endpoint-agent")
ACTIONS = ("report", "quarantine")
QUARANTINE_DIR = "quarantine"
_CHUNK = 1 << 20
_MAGIC = b"EAQ1"
_LENGTH = struct.Struct(">I")
_MAX_FRAME = _CHUNK + 64
_SCHEMA = """
CREATE TABLE IF NOT EXISTS quarantine (
    id TEXT PRIMARY KEY,
    added INTEGER NOT NULL,
    size INTEGER NOT NULL,
    meta BLOB NOT NULL
) WITHOUT ROWID;
"""


class QuarantineError(AgentError):
    """A file could not be quarantined, restored or found; nothing was changed."""


@dataclass(frozen=True, slots=True)
class QuarantinedItem:
    """One quarantined file; the fields after ``size`` are None when its metadata cannot be opened."""

    id: str
    added: int
    size: int
    path: str | None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    mtime_ns: int | None = None
    sha256: str | None = None
    detections: tuple[str, ...] = ()
    unreadable: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The item as a JSON-ready dict (for ``quarantine list --json`` and export)."""
        doc = asdict(self)
        doc["detections"] = list(self.detections)
        if not self.unreadable:
            del doc["unreadable"]
        return doc


class Quarantine:
    """The quarantine under ``state_dir``; ``key`` seals contents and metadata (one per thread)."""

    def __init__(
        self, state_dir: Path, key: DataKey, clock: Callable[[], float] = time.time, chunk: int = _CHUNK
    ) -> None:
        self.state_dir, self.dir = state_dir, state_dir / QUARANTINE_DIR
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.dir.chmod(0o700)
        self._db = connect(state_dir / "agent.db", _SCHEMA)
        self._key, self._clock, self._chunk = key, clock, min(chunk, _CHUNK)

    @classmethod
    def open(cls, config: Config, clock: Callable[[], float] = time.time, key: DataKey | None = None) -> Self:
        """The quarantine of the install at ``config.state_dir`` (``key``: the data key, if loaded)."""
        return cls(config.state_dir, key or DataKey.load_or_create(config.state_dir), clock)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def add(
        self, path: str | Path, detections: tuple[str, ...] = (), expect: tuple[int, int] | None = None
    ) -> QuarantinedItem:
        """Move the regular file at ``path`` into the quarantine, encrypted; return its item.

        ``expect`` is the (device, inode) of the file the verdict was about: when ``path`` names
        another file by now (replaced since it was scanned), nothing is moved.
        """
        target = Path(os.path.abspath(path))
        if (target.parent.resolve() / target.name).is_relative_to(self.state_dir.resolve()):
            raise QuarantineError("refusing to quarantine a file inside the agent's state dir")
        fd = _open_regular(target)
        try:
            if expect is not None and _identity(os.fstat(fd)) != expect:
                raise QuarantineError("the file was replaced since it was scanned; not quarantined")
            item_id = secrets.token_hex(16)
            item = self._store(fd, target, item_id, detections)
            try:
                _unlink_same(target, fd)
            except QuarantineError:
                self._remove(item_id)
                raise
        finally:
            os.close(fd)
        log.info("file_quarantined", item=item_id, size=item.size)
        return item

    def entries(self) -> list[QuarantinedItem]:
        """Every quarantined item, oldest first, with its metadata opened."""
        rows = self._db.execute("SELECT id, added, size, meta FROM quarantine ORDER BY added, id")
        return [self._item(*row) for row in rows.fetchall()]

    def get(self, item_id: str) -> QuarantinedItem:
        """One item by id; :class:`QuarantineError` when there is none."""
        row = self._db.execute(
            "SELECT id, added, size, meta FROM quarantine WHERE id = ?", (item_id,)
        ).fetchone()
        if row is None:
            raise QuarantineError(f"no quarantined item {item_id!r}")
        return self._item(*row)

    def restore(self, item_id: str, to: Path | None = None) -> Path:
        """Put an item back, byte-identical, at its original path (or ``to``); never overwrite."""
        item = self.get(item_id)
        if item.unreadable or item.path is None:
            raise QuarantineError(f"item {item_id} cannot be restored: {item.unreadable}")
        target = Path(os.path.abspath(to)) if to is not None else Path(item.path)
        if os.path.lexists(target):
            raise QuarantineError(f"refusing to overwrite an existing file; use --to (item {item_id})")
        if not target.parent.is_dir():
            raise QuarantineError(f"the directory to restore into does not exist; use --to (item {item_id})")
        tmp = target.parent / f".{secrets.token_hex(8)}.restoring"
        try:
            self._write_back(item, tmp)
            _link_no_clobber(tmp, target, item_id)
        finally:
            tmp.unlink(missing_ok=True)
        self._remove(item_id)
        log.info("file_restored", item=item_id)
        return target

    def delete(self, item_id: str) -> bool:
        """Destroy an item; False when there was none."""
        return self._remove(item_id)

    def purge(self, before: float) -> int:
        """Destroy items added before ``before`` and leftover files older than it; return how many items."""
        ids = [i for (i,) in self._db.execute("SELECT id FROM quarantine WHERE added < ?", (before,))]
        removed = sum(self._remove(i) for i in ids)
        known = {i for (i,) in self._db.execute("SELECT id FROM quarantine")}
        for leftover in self.dir.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if leftover.name not in known and leftover.lstat().st_mtime < before:
                    leftover.unlink()
        return removed

    def wipe(self) -> int:
        """Destroy every item and every file in the quarantine dir (for ``forget``); return item count."""
        with transaction(self._db):
            count = int(self._db.execute("DELETE FROM quarantine").rowcount)
        for leftover in self.dir.iterdir():
            leftover.unlink(missing_ok=True)
        return count

    # ------------------------------------------------------------------ internals

    def _store(self, fd: int, source: Path, item_id: str, detections: tuple[str, ...]) -> QuarantinedItem:
        before = os.fstat(fd)
        tmp = self.dir / f".{item_id}.tmp"
        try:
            digest, size = self._encrypt(fd, tmp, item_id)
            after = os.fstat(fd)
            if (after.st_size, after.st_mtime_ns) != (
                before.st_size,
                before.st_mtime_ns,
            ) or size != after.st_size:
                raise QuarantineError("the file changed while it was being quarantined")
            tmp.replace(self.dir / item_id)
        finally:
            tmp.unlink(missing_ok=True)
        item = QuarantinedItem(
            item_id, int(self._clock()), size, os.fsdecode(source), stat.S_IMODE(before.st_mode),
            before.st_uid, before.st_gid, before.st_mtime_ns, digest, detections,
        )  # fmt: skip
        meta = {k: v for k, v in item.as_dict().items() if k not in ("id", "added", "size")}
        sealed = self._key.seal(json.dumps(meta).encode("ascii"), b"quarantine.meta:" + item_id.encode())
        with transaction(self._db):
            self._db.execute(
                "INSERT INTO quarantine (id, added, size, meta) VALUES (?, ?, ?, ?)",
                (item_id, item.added, size, sealed),
            )
        _fsync_dir(self.dir)
        return item

    def _encrypt(self, fd: int, out: Path, item_id: str) -> tuple[str, int]:
        digest, size = hashlib.sha256(), 0
        with _create_private(out) as sink:
            sink.write(_MAGIC)
            for index, chunk, last in _chunks(fd, self._chunk):
                digest.update(chunk)
                size += len(chunk)
                sealed = self._key.seal(chunk, _frame_aad(item_id, index, last=last))
                sink.write(_LENGTH.pack(len(sealed)) + sealed)
            sink.flush()
            os.fsync(sink.fileno())
        return digest.hexdigest(), size

    def _write_back(self, item: QuarantinedItem, tmp: Path) -> None:
        digest = hashlib.sha256()
        with (self.dir / item.id).open("rb") as source, _create_private(tmp) as sink:
            for chunk in self.frames(item.id, source):
                digest.update(chunk)
                sink.write(chunk)
            if digest.hexdigest() != item.sha256:
                raise QuarantineError(f"item {item.id} does not match its recorded SHA-256")
            sink.flush()
            fd = sink.fileno()
            if os.geteuid() == 0 and item.uid is not None and item.gid is not None:
                os.fchown(fd, item.uid, item.gid)  # before chmod: chown clears set-id bits
            os.fchmod(fd, item.mode if item.mode is not None else 0o600)
            if item.mtime_ns is not None:
                os.utime(fd, ns=(item.mtime_ns, item.mtime_ns))
            os.fsync(fd)

    def frames(self, item_id: str, source: IO[bytes]) -> Iterator[bytes]:
        """The plaintext chunks of a quarantined file; :class:`QuarantineError` for any damage."""
        if source.read(len(_MAGIC)) != _MAGIC:
            raise QuarantineError(f"item {item_id} is not a quarantine file")
        index = 0
        while True:
            header = source.read(_LENGTH.size)
            if len(header) != _LENGTH.size:
                raise QuarantineError(f"item {item_id} is cut off (frame {index} missing)")
            (length,) = _LENGTH.unpack(header)
            blob = source.read(length) if length <= _MAX_FRAME else b""
            if len(blob) != length or not blob:
                raise QuarantineError(f"item {item_id} has a damaged frame {index}")
            chunk, last = self._open_frame(item_id, index, blob)
            yield chunk
            if last:
                if source.read(1):
                    raise QuarantineError(f"item {item_id} has data after its last frame")
                return
            index += 1

    def _open_frame(self, item_id: str, index: int, blob: bytes) -> tuple[bytes, bool]:
        for last in (False, True):
            with contextlib.suppress(UnsealError):
                return self._key.open(blob, _frame_aad(item_id, index, last=last)), last
        raise QuarantineError(f"item {item_id}: frame {index} was changed, moved, or its key was shredded")

    def _item(self, item_id: str, added: int, size: int, sealed: bytes) -> QuarantinedItem:
        try:
            meta = json.loads(self._key.open(bytes(sealed), b"quarantine.meta:" + item_id.encode()))
        except UnsealError as exc:
            return QuarantinedItem(item_id, added, size, None, unreadable=str(exc))
        meta["detections"] = tuple(meta["detections"])
        return QuarantinedItem(item_id, added, size, **meta)

    def _remove(self, item_id: str) -> bool:
        with transaction(self._db):
            gone = self._db.execute("DELETE FROM quarantine WHERE id = ?", (item_id,)).rowcount
        (self.dir / item_id).unlink(missing_ok=True)
        return bool(gone)


def _frame_aad(item_id: str, index: int, *, last: bool) -> bytes:
    return f"quarantine.content:{item_id}:{index}:{int(last)}".encode()


def _chunks(fd: int, size: int) -> Iterator[tuple[int, bytes, bool]]:
    """(index, chunk, is_last) over the file, reading one chunk ahead; one empty chunk for an empty file."""
    current = os.read(fd, size)
    index = 0
    while True:
        following = os.read(fd, size) if current else b""
        yield index, current, not following
        if not following:
            return
        current, index = following, index + 1


def _open_regular(path: Path) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise QuarantineError(f"cannot open the file to quarantine: {exc.strerror}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise QuarantineError("only regular files can be quarantined")
    os.set_blocking(fd, True)
    return fd


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _unlink_same(path: Path, fd: int) -> None:
    """Unlink ``path`` if it still names the file open on ``fd``."""
    opened = os.fstat(fd)
    try:
        if _identity(path.lstat()) != _identity(opened):
            raise QuarantineError("the file was replaced while it was being quarantined; nothing was moved")
        path.unlink()
    except OSError as exc:
        raise QuarantineError(f"cannot remove the original file: {exc.strerror}") from exc


def _link_no_clobber(tmp: Path, target: Path, item_id: str) -> None:
    try:
        os.link(tmp, target)
    except FileExistsError as exc:
        raise QuarantineError(f"refusing to overwrite an existing file; use --to (item {item_id})") from exc
    except OSError:  # a file system without hard links: check, then rename
        if os.path.lexists(target):
            raise QuarantineError(f"refusing to overwrite an existing file (item {item_id})") from None
        tmp.rename(target)
    _fsync_dir(target.parent)


@contextlib.contextmanager
def _create_private(path: Path) -> Iterator[IO[bytes]]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as fh:
        yield fh


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------- the policy hook


def parse_actions(table: object, where: str) -> dict[str, str]:
    """Check ``[actions]`` of a policy file: severity -> ``report`` or ``quarantine``."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: actions must be a table")
    for severity, action in table.items():
        if action not in ACTIONS:
            raise ConfigError(f"{where}: actions.{severity} must be one of {', '.join(ACTIONS)}")
    return {str(k): str(v) for k, v in table.items()}


def wants_quarantine(outcome: Outcome, actions: Mapping[str, str]) -> bool:
    """Whether the policy quarantines this outcome's file (a detection whose severity says so)."""
    if outcome.verdict.kind not in (VerdictKind.MALICIOUS, VerdictKind.SUSPICIOUS):
        return False
    if outcome.request.data is not None or outcome.request.stat is None:
        return False  # a stream held in memory has no file to move
    if not outcome.request.act:
        return False  # the requester asked for a report only (a clamd client's SCAN)
    threats = (d for d in outcome.verdict.detections if d.source != "limit")
    return any(actions.get(d.severity, "report") == "quarantine" for d in threats)


class QuarantineAction:
    """The session's hook: quarantine an outcome's file when the policy's ``[actions]`` say so."""

    def __init__(self, quarantine: Quarantine, actions: Mapping[str, str]) -> None:
        self.quarantine, self.actions = quarantine, dict(actions)
        self.quarantined = 0

    def __call__(self, outcome: Outcome) -> Outcome:
        """Quarantine the file if the policy says so; return the outcome with what was done."""
        if not wants_quarantine(outcome, self.actions):
            return outcome
        names = tuple(dict.fromkeys(d.name for d in outcome.verdict.detections))
        scanned = outcome.request.stat
        expect = (scanned.device, scanned.inode) if scanned is not None else None
        try:
            item = self.quarantine.add(outcome.request.path, names, expect)
        except QuarantineError as exc:
            log.warning("quarantine_failed", reason=str(exc))
            return msgspec.structs.replace(outcome, action="quarantine_failed", action_detail=str(exc))
        self.quarantined += 1
        return msgspec.structs.replace(outcome, action="quarantined", action_detail=item.id)
