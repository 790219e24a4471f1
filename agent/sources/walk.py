"""On-demand source: walk the paths a user named and produce scan requests.

Rules of the walk:
- Regular files are scanned. FIFOs, sockets and devices are never opened; inside a tree they are
  counted as skipped, named explicitly they are reported as errors.
- A symlink named on the command line is followed: a link to a file is scanned at its target's real
  path (the pipeline opens files with ``O_NOFOLLOW``) and reported under the name given. Symlinks
  met inside a tree are not: their target is either inside the tree (and scanned at its real path)
  or outside it (and must not be scanned), so skipping them loses nothing and no link can lead out
  of the tree or into a loop.
- A directory reached twice (bind mounts) is walked once.
- An unreadable directory or a path that vanished becomes an error outcome, and the walk goes on.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent.model import ScanRequest, Source, StatKey

__all__ = ["WalkError", "Walker"]


@dataclass(frozen=True, slots=True)
class WalkError:
    """A path that could not be walked, with a reason free of paths."""

    path: str
    reason: str


def _reason(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()


@dataclass(slots=True)
class Walker:
    """Walks paths into scan requests; ``skipped`` counts what it passed over, by reason."""

    source: Source = Source.ON_DEMAND
    exclude_dirs: frozenset[str] = frozenset()
    skipped: Counter[str] = field(default_factory=Counter)
    _seen_dirs: set[tuple[int, int]] = field(default_factory=set)

    def walk(self, paths: Sequence[str]) -> Iterator[ScanRequest | WalkError]:
        """Yield a request per regular file under ``paths`` (each a file or a directory)."""
        for path in paths:
            try:
                st = os.stat(path)  # explicit arguments are followed, like clamscan
            except OSError as exc:
                yield WalkError(path, _reason(exc))
                continue
            if stat.S_ISDIR(st.st_mode):
                yield from self._tree(path, st)
            elif stat.S_ISREG(st.st_mode):
                yield _named_file(path, st, self.source)
            else:
                yield WalkError(path, f"not a regular file ({_type_name(st.st_mode)})")

    def _tree(self, root: str, root_st: os.stat_result) -> Iterator[ScanRequest | WalkError]:
        stack = [(root, root_st)]
        while stack:
            directory, st = stack.pop()
            if (st.st_dev, st.st_ino) in self._seen_dirs or os.path.abspath(directory) in self.exclude_dirs:
                continue
            self._seen_dirs.add((st.st_dev, st.st_ino))
            try:
                with os.scandir(directory) as entries:
                    children = sorted(entries, key=lambda e: e.name)
            except OSError as exc:
                yield WalkError(directory, _reason(exc))
                continue
            for entry in children:
                yield from self._entry(entry, stack)

    def _entry(
        self, entry: os.DirEntry[str], stack: list[tuple[str, os.stat_result]]
    ) -> Iterator[ScanRequest | WalkError]:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            yield WalkError(entry.path, _reason(exc))
            return
        mode = st.st_mode
        if stat.S_ISREG(mode):
            yield ScanRequest(path=entry.path, source=self.source, stat=StatKey.of(st))
        elif stat.S_ISDIR(mode):
            stack.append((entry.path, st))
        else:
            self.skipped[_type_name(mode)] += 1


def _named_file(path: str, st: os.stat_result, source: Source) -> ScanRequest | WalkError:
    """The request for a regular file named explicitly: a link to it is scanned at its target.

    The target is resolved first and then stat'ed without following links, so the request's path and
    stat name one file even if the link is pointed elsewhere meanwhile (a stat taken through the link
    could belong to another file than the path resolved after it, and the verdict cache trusts it).
    """
    if not Path(path).is_symlink():
        return ScanRequest(path=path, source=source, stat=StatKey.of(st))
    real = str(Path(path).resolve())
    try:
        st = os.stat(real, follow_symlinks=False)
    except OSError as exc:
        return WalkError(path, _reason(exc))
    if not stat.S_ISREG(st.st_mode):
        return WalkError(path, f"not a regular file ({_type_name(st.st_mode)})")
    return ScanRequest(path=real, source=source, stat=StatKey.of(st), display=path)


def _type_name(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"
