"""The per-worker engine: hashes, rules, archive recursion and limits, on generated samples."""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import replace

import pytest
import samples

from agent.config import bundled_rules_dir
from agent.engine import DEFAULT_LIMITS, Engine, load_rules
from agent.engine.scanner import MMAP_THRESHOLD
from agent.errors import LimitExceeded


@pytest.fixture(scope="module")
def rules():
    return load_rules(bundled_rules_dir())


def _engine(rules, **limits):
    return Engine(rules, replace(DEFAULT_LIMITS, **limits))


def _scan(engine, data, name="sample"):
    seen = []
    result = engine.scan_bytes(data, name, lambda d, n, depth: seen.append((n, depth)))
    return result, seen


def _names(result):
    return sorted({d.name for d in result.detections})


def test_eicar_is_found_by_rule_and_hash(rules):
    """EICAR is found by its YARA rule and by the bundled SHA-256 list."""
    result, _ = _scan(_engine(rules), samples.eicar())
    assert _names(result) == ["EICAR_Test_File", "Eicar-Test-Signature"]
    assert {d.source for d in result.detections} == {"yara", "hash"}
    assert result.sha256 == hashlib.sha256(samples.eicar()).hexdigest()


def test_clean_bytes_have_no_detections(rules):
    """Ordinary text has no detections and no errors."""
    result, seen = _scan(_engine(rules), b"just a shopping list\nmilk\neggs\n")
    assert result.detections == () and result.errors == ()
    assert seen == [("sample", 0)]


@pytest.mark.parametrize("depth", [1, 5, 15])
def test_eicar_in_nested_zips_names_the_member(rules, depth):
    """EICAR inside nested zips is found and the detection names the member path."""
    result, _ = _scan(_engine(rules), samples.nested_zip(samples.eicar(), depth))
    hits = [d for d in result.detections if d.source == "yara"]
    assert hits and hits[0].member is not None
    assert hits[0].member.endswith("eicar.com")
    assert hits[0].member.count("/") == depth - 1


def test_nesting_past_the_limit_is_unscanned_not_clean(rules):
    """EICAR nested 20 zips deep (limit 16) yields Limits.Exceeded.MaxRecursion, never a clean result."""
    result, _ = _scan(_engine(rules), samples.nested_zip(samples.eicar(), 20))
    assert "Limits.Exceeded.MaxRecursion" in _names(result)


def test_deflate_bomb_hits_the_ratio_guard(rules):
    """100 MB of zeros deflated to ~100 KB is stopped by the compression-ratio guard."""
    bomb = samples.zip_of({"zeros.bin": bytes(100 * 1024 * 1024)})
    assert len(bomb) < 200_000
    result, _ = _scan(_engine(rules), bomb)
    assert _names(result) == ["Limits.Exceeded.CompressionRatio"]


def test_member_over_max_file_size_is_reported(rules):
    """A member larger than max_file_size (compressible but under the ratio) is a limit detection."""
    data = os.urandom(150_000).hex().encode()  # 300 KB that deflates to about 160 KB
    archive = samples.zip_of({"big.txt": data})
    assert len(archive) < 200_000
    result, _ = _scan(_engine(rules, max_file_size=200_000), archive)
    assert _names(result) == ["Limits.Exceeded.MaxFileSize"]


def test_too_many_members_is_reported(rules):
    """An archive with more members than max_files is a MaxFiles limit detection."""
    archive = samples.zip_of({f"f{i}.txt": b"x" for i in range(30)})
    result, _ = _scan(_engine(rules, max_files=10), archive)
    assert "Limits.Exceeded.MaxFiles" in _names(result)


def test_scan_size_budget_covers_members(rules):
    """Bytes of all members count against max_scan_size."""
    archive = samples.zip_of({f"f{i}.bin": os.urandom(50_000) for i in range(10)}, zipfile.ZIP_STORED)
    result, _ = _scan(
        _engine(rules, max_scan_size=len(archive) + 100_000, max_file_size=len(archive)), archive
    )
    assert "Limits.Exceeded.MaxScanSize" in _names(result)


def test_detection_beside_a_bomb_is_still_found(rules):
    """A limit on one member does not hide EICAR in another member."""
    archive = samples.zip_of({"zeros.bin": bytes(50 * 1024 * 1024), "eicar.com": samples.eicar()})
    result, _ = _scan(_engine(rules), archive)
    assert {"EICAR_Test_File", "Limits.Exceeded.CompressionRatio"} <= set(_names(result))


def test_tar_gz_and_gzip_members_are_scanned(rules):
    """tar.gz, tar.bz2, tar.xz and plain gzip members are unpacked and scanned."""
    for mode in ("w:gz", "w:bz2", "w:xz"):
        result, _ = _scan(_engine(rules), samples.tar_of({"dir/eicar.com": samples.eicar()}, mode), "a.tar")
        assert "EICAR_Test_File" in _names(result), mode
    result, _ = _scan(_engine(rules), samples.gzip_of(samples.eicar()), "eicar.com.gz")
    assert [d.member for d in result.detections if d.source == "yara"] == ["eicar.com"]


def test_tar_links_are_not_followed(rules, tmp_path):
    """Symlinks and hardlinks inside a tar carry no data and are never followed."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, kind in (("link", tarfile.SYMTYPE), ("hard", tarfile.LNKTYPE)):
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "/etc/passwd"
            tf.addfile(info)
    result, seen = _scan(_engine(rules), buf.getvalue())
    assert result.detections == () and result.errors == ()
    assert [n for n, _ in seen] == ["sample"]


def test_corrupt_zip_is_an_error_not_clean(rules):
    """A truncated zip records an error, so the verdict cannot be clean."""
    archive = samples.zip_of({"a.txt": os.urandom(5000), "b.txt": os.urandom(5000)}, zipfile.ZIP_STORED)
    broken = archive[:30] + archive[30:4000] + archive[-22:]
    result, _ = _scan(_engine(rules), broken)
    assert result.errors


def test_top_level_over_max_file_size_raises(rules):
    """An object over max_file_size is refused before it is read."""
    with pytest.raises(LimitExceeded) as info:
        _engine(rules, max_file_size=10).scan_bytes(b"x" * 11, "n", lambda *a: None)
    assert info.value.which == "MaxFileSize"


def test_large_file_is_mapped_and_hashed_in_one_pass(rules, tmp_path):
    """A file above the mmap threshold is hashed and scanned in place, with the right digest."""
    path = tmp_path / "big.bin"
    data = os.urandom(MMAP_THRESHOLD + 4096) + samples.eicar()
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        result = _engine(rules).scan_fd(fd, len(data), "big.bin", lambda *a: None)
    finally:
        os.close(fd)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.size == len(data)


def _rss_file_kib() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("RssFile:"))


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_large_file_is_not_held_mapped_after_its_scan(rules, tmp_path):
    """Once a large file is scanned, its pages are no longer mapped into the worker (it may idle for hours)."""
    path = tmp_path / "big.bin"
    size = MMAP_THRESHOLD + 16 * 1024 * 1024
    path.write_bytes(os.urandom(size))
    engine = _engine(rules)
    engine.scan_bytes(b"warm up", "small", lambda *a: None)
    before = _rss_file_kib()
    fd = os.open(path, os.O_RDONLY)
    try:
        engine.scan_fd(fd, size, "big.bin", lambda *a: None)
    finally:
        os.close(fd)
    assert _rss_file_kib() - before < size // 1024 // 4


def test_md5_hash_list_matches_by_size(tmp_path):
    """An .hdb md5 entry fires only for the listed size."""
    (tmp_path / "x.hdb").write_text(f"{hashlib.md5(b'payload').hexdigest()}:7:Test.Md5\n")
    engine = Engine(load_rules(tmp_path), DEFAULT_LIMITS)
    assert _names(_scan(engine, b"payload")[0]) == ["Test.Md5"]
    assert _names(_scan(engine, b"payload2")[0]) == []
