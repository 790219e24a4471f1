"""The on-demand walk: what a named link turns into."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.model import ScanRequest, StatKey
from agent.sources.walk import Walker, WalkError


def _one(path: Path) -> ScanRequest | WalkError:
    (item,) = Walker().walk([str(path)])
    return item


def test_a_named_link_is_scanned_at_its_target_under_the_name_given(tmp_path):
    target = tmp_path / "real.txt"
    target.write_text("hello\n")
    link = tmp_path / "link"
    link.symlink_to("real.txt")  # relative, as links often are
    item = _one(link)
    assert isinstance(item, ScanRequest)
    assert (item.path, item.display) == (str(target), str(link))
    assert item.stat == StatKey.of(os.stat(target))


def test_a_link_pointed_elsewhere_while_it_is_walked_keeps_path_and_stat_together(tmp_path, monkeypatch):
    """The stat taken through the link is the first file's; the request must not pair it with the second."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_bytes(b"a" * 10)
    second.write_bytes(b"b" * 20)
    link = tmp_path / "link"
    link.symlink_to(first)
    resolve = Path.resolve

    def swap_then_resolve(self: Path, strict: bool = False) -> Path:
        if self == link:
            link.unlink()
            link.symlink_to(second)
        return resolve(self, strict)

    monkeypatch.setattr(Path, "resolve", swap_then_resolve)
    item = _one(link)
    assert isinstance(item, ScanRequest)
    assert item.path == str(second)
    assert item.stat == StatKey.of(os.stat(second))


@pytest.mark.parametrize("kind", ["dangling", "fifo"])
def test_a_named_link_to_no_regular_file_is_an_error(tmp_path, kind):
    target = tmp_path / "target"
    if kind == "fifo":
        os.mkfifo(target)
    link = tmp_path / "link"
    link.symlink_to(target)
    item = _one(link)
    assert isinstance(item, WalkError)
    assert item.path == str(link)
