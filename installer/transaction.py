"""Every change an install makes, as a step that knows how to undo itself; a dry run only lists them.

A step that fails raises :class:`InstallError`; :meth:`Transaction.rollback` then undoes what was done,
newest first, and returns what it undid. A directory the transaction created is removed whole on
rollback (nothing in it existed before); a file is removed only when the transaction created it.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent.errors import AgentError

__all__ = ["InstallError", "Transaction"]


class InstallError(AgentError):
    """A step of the install (or uninstall) failed; the message says which and why, without secrets."""


@dataclass(slots=True)
class _Undo:
    what: str
    undo: Callable[[], None]


@dataclass(slots=True)
class Transaction:
    """The steps of one install; with ``dry_run`` nothing is touched and the plan is collected."""

    dry_run: bool = False
    plan: list[str] = field(default_factory=list)
    created_dirs: list[Path] = field(default_factory=list)
    _planned_dirs: set[Path] = field(default_factory=set)
    _undo: list[_Undo] = field(default_factory=list)

    def mkdir(self, path: Path, mode: int = 0o755) -> None:
        """Create ``path`` and its missing parents; each one created is removed on rollback."""
        missing = [p for p in (path, *path.parents) if not p.exists() and p not in self._planned_dirs]
        for directory in reversed(missing):
            self.plan.append(f"create directory {directory} ({mode:04o})")
            self._planned_dirs.add(directory)
            if self.dry_run:
                continue
            try:
                directory.mkdir(mode=mode)
                directory.chmod(mode)  # mkdir's mode is filtered by the umask
            except OSError as exc:
                raise InstallError(f"cannot create {directory}: {exc.strerror}") from exc
            self._undo.append(_Undo(f"removed {directory}", functools.partial(_remove_tree, directory)))
            self.created_dirs.append(directory)

    def write(self, path: Path, data: bytes, mode: int, what: str) -> None:
        """Create the file ``path`` (it must not exist) holding ``data``, with ``mode``."""
        self.plan.append(f"write {path} ({mode:04o}): {what}")
        if self.dry_run:
            return
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        except OSError as exc:
            raise InstallError(f"cannot write {path}: {exc.strerror}") from exc
        self._undo.append(_Undo(f"removed {path}", lambda: path.unlink(missing_ok=True)))
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            path.chmod(mode)
        except OSError as exc:
            raise InstallError(f"cannot write {path}: {exc.strerror}") from exc

    def copy(self, source: Path | None, path: Path, mode: int, what: str) -> None:
        """Copy the file ``source`` to ``path`` (which must not exist), with ``mode``."""
        if source is None:
            self.plan.append(f"write {path} ({mode:04o}): {what} (none found: pass --binary PATH)")
            if not self.dry_run:
                raise InstallError("no binary to install: pass --binary PATH")
            return
        if self.dry_run:
            self.plan.append(f"write {path} ({mode:04o}): {what}")
            return
        try:
            data = source.read_bytes()
        except OSError as exc:
            raise InstallError(f"cannot read {source}: {exc.strerror}") from exc
        self.write(path, data, mode, what)

    def files(self, paths: list[Path], what: str, make: Callable[[], None]) -> None:
        """Run ``make``, which creates ``paths`` (those of them that were absent are removed on rollback)."""
        self.plan.append(what)
        if self.dry_run:
            return
        fresh = [p for p in paths if not p.exists()]
        self._undo.append(_Undo(f"removed {', '.join(p.name for p in fresh)}", lambda: _unlink_all(fresh)))
        try:
            make()
        except (AgentError, OSError) as exc:
            raise InstallError(f"{what}: {exc}") from exc

    def action(self, what: str, do: Callable[[], None], undo: Callable[[], None] | None, done: str) -> None:
        """Run ``do``; on rollback run ``undo`` (reported as ``done``)."""
        self.plan.append(what)
        if self.dry_run:
            return
        if undo is not None:  # registered first: a step that fails half-way is undone too
            self._undo.append(_Undo(done, undo))
        try:
            do()
        except InstallError:
            raise
        except (AgentError, OSError) as exc:
            raise InstallError(f"{what}: {exc}") from exc

    def on_rollback(self, what: str, undo: Callable[[], None]) -> None:
        """Run ``undo`` on rollback, after the undo of every later step (plans nothing)."""
        if not self.dry_run:
            self._undo.append(_Undo(what, undo))

    def rollback(self) -> list[str]:
        """Undo every step, newest first; return what was undone (an undo that fails is reported)."""
        undone = []
        while self._undo:
            step = self._undo.pop()
            try:
                step.undo()
            except (AgentError, OSError) as exc:
                undone.append(f"could not undo ({step.what}): {exc}")
            else:
                undone.append(step.what)
        return undone

    def commit(self) -> None:
        """Forget the undo steps: the install stands."""
        self._undo.clear()


def _remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        _remove_tree(path)
