"""Compiled rules kept between starts: reused for the same files, rebuilt when damaged, changed or forged."""

from __future__ import annotations

import hashlib
import stat

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.engine import RulesCache, load_rules
from agent.engine import rules as rules_module

_EICARISH = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$TEST-MARKER"
_SHA = hashlib.sha256(b"planted").hexdigest()
_KEY = bytes(range(32))


def _cache(tmp_path, key=_KEY):
    return RulesCache(tmp_path / "compiled", key)


def _rules_dir(tmp_path, marker="TEST-MARKER"):
    src = tmp_path / "rules"
    src.mkdir(parents=True, exist_ok=True)
    (src / "r.yar").write_text(f'rule marker {{ strings: $a = "{marker}" condition: $a }}\n')
    (src / "h.hsb").write_text(f"{_SHA}:7:Sig.Planted\n{'c' * 64}:*:Sig.Any\n")
    return src


def _matches(ruleset, data):
    return [r.identifier for r in ruleset.scanner().scan(data).matching_rules]


def test_second_load_comes_from_the_cache_and_scans_the_same(tmp_path, monkeypatch):
    """The cache is used for the same files: nothing is compiled again, and it matches the same."""
    src, cache = _rules_dir(tmp_path), _cache(tmp_path)
    first = load_rules(src, cache)

    def no_compile(_sources):
        raise AssertionError("compiled again although cached")

    monkeypatch.setattr(rules_module, "_compile", no_compile)
    second = load_rules(src, cache)
    assert second.version == first.version
    assert second.yara == first.yara
    assert second.yara_rules == first.yara_rules == 1
    assert second.hashes.lookup("sha256", _SHA, 7) == ["Sig.Planted"]
    assert second.hashes.lookup("sha256", "c" * 64, 123) == ["Sig.Any"]
    assert _matches(second, _EICARISH) == ["marker"]


def test_cache_file_is_private(tmp_path):
    """The cache directory is 0700 and each compiled file 0600."""
    cache = _cache(tmp_path)
    load_rules(_rules_dir(tmp_path), cache)
    assert stat.S_IMODE(cache.directory.stat().st_mode) == 0o700
    (only,) = cache.directory.glob("rules-*.bin")
    assert stat.S_IMODE(only.stat().st_mode) == 0o600


def test_changed_rules_are_compiled_again(tmp_path):
    """Editing a rule file gives a new version, compiled afresh: the old cache is never served."""
    cache = _cache(tmp_path)
    old = load_rules(_rules_dir(tmp_path, "OLD-MARKER"), cache)
    new = load_rules(_rules_dir(tmp_path, "NEW-MARKER"), cache)
    assert new.version != old.version
    assert _matches(new, b"...NEW-MARKER...") == ["marker"]
    assert _matches(new, b"...OLD-MARKER...") == []


def test_only_the_newest_versions_are_kept(tmp_path):
    """Old compiled versions are pruned, so the cache does not grow with every rules update."""
    cache = _cache(tmp_path)
    for i in range(6):
        load_rules(_rules_dir(tmp_path, f"MARKER-{i}"), cache)
    assert len(list(cache.directory.glob("rules-*.bin"))) == 3


def test_damaged_cache_is_ignored_and_rebuilt(tmp_path, capsys):
    """A flipped byte fails the digest: the rules are compiled again, and right."""
    src, cache = _rules_dir(tmp_path), _cache(tmp_path)
    load_rules(src, cache)
    (path,) = cache.directory.glob("rules-*.bin")
    blob = bytearray(path.read_bytes())
    blob[-10] ^= 0xFF
    path.write_bytes(bytes(blob))
    again = load_rules(src, cache)
    assert _matches(again, _EICARISH) == ["marker"]
    assert "rules_cache_ignored" in capsys.readouterr().out
    assert load_rules(src, cache).yara == again.yara  # and the rebuilt file is good again


def test_unwritable_cache_only_costs_time(tmp_path):
    """A cache directory that cannot be made leaves the rules loaded all the same."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    ruleset = load_rules(_rules_dir(tmp_path), RulesCache(blocker / "compiled", _KEY))
    assert _matches(ruleset, _EICARISH) == ["marker"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(max_size=4096), keep_header=st.booleans())
def test_garbage_in_the_cache_never_breaks_loading(tmp_path, garbage, keep_header):
    """Whatever bytes sit in the cache file, loading gives working rules: the file is rebuilt, never trusted."""
    src, cache = _rules_dir(tmp_path), _cache(tmp_path)
    version = load_rules(src).version
    cache.directory.mkdir(exist_ok=True)
    head = rules_module._CACHE_FORMAT + rules_module._mac(_KEY, garbage) if keep_header else b""
    (cache.directory / f"rules-{version}.bin").write_bytes(head + garbage)
    ruleset = load_rules(src, cache)
    assert ruleset.version == version
    assert _matches(ruleset, _EICARISH) == ["marker"]


def test_a_cache_written_under_another_key_is_not_loaded(tmp_path, capsys):
    """Compiled rules hold native code: a well-formed file this install did not write is never loaded."""
    src = _rules_dir(tmp_path)
    version = load_rules(src).version
    forged = load_rules(_rules_dir(tmp_path / "other", "FORGED-MARKER"))
    body = msgspec.msgpack.encode(
        rules_module._Compiled(version, forged.yara, 1, forged.hashes.by_algo, forged.hashes.sizes)
    )
    mine = _cache(tmp_path)
    mine.directory.mkdir()
    head = rules_module._CACHE_FORMAT + rules_module._mac(b"k" * 32, body)  # right format, other key
    (mine.directory / f"rules-{version}.bin").write_bytes(head + body)
    ruleset = load_rules(src, mine)
    assert "not written by this install" in capsys.readouterr().out
    assert _matches(ruleset, _EICARISH) == ["marker"]
    assert _matches(ruleset, b"FORGED-MARKER") == []
    (mine.directory / f"rules-{version}.bin").write_bytes(
        rules_module._CACHE_FORMAT + rules_module._mac(_KEY, body) + body
    )
    assert _matches(load_rules(src, mine), b"FORGED-MARKER") == [
        "marker"
    ]  # the same file under our key loads
