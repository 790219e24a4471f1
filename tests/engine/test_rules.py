"""Rule loading: YARA-X sources and ClamAV hash lists, with errors that name file and line."""

from __future__ import annotations

import hashlib
import importlib.metadata

import pytest

from agent.config import bundled_rules_dir
from agent.engine import ENGINE_VERSION, HashDb, load_rules, parse_hash_list
from agent.errors import RulesError


def test_bundled_rules_compile():
    """The rules shipped in rules/ compile and include the hash list."""
    rules = load_rules(bundled_rules_dir())
    assert rules.yara_rules >= 8
    assert len(rules.hashes) >= 1
    assert len(rules.version) == 16


def test_syntax_error_names_file_and_line(tmp_path):
    """A broken rule file is a start-up error that names the file and the line."""
    (tmp_path / "ok.yar").write_text('rule ok { strings: $a = "abc" condition: $a }\n')
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "broken.yar").write_text('rule ok2 {\n  strings: $a = "x"\n  condition: $a and\n}\n')
    with pytest.raises(RulesError) as info:
        load_rules(tmp_path)
    assert "sub/broken.yar:4" in str(info.value)


def test_unknown_severity_is_an_error_naming_file_and_line(tmp_path):
    """A severity outside critical/high/medium/low is refused, not silently read as malicious."""
    (tmp_path / "r.yar").write_text(
        'rule r {\n  meta:\n    severity = "High"\n  strings: $a = "abc"\n  condition: $a\n}\n'
        'rule s {\n  meta:\n    severity = "extreme"\n  strings: $a = "abd"\n  condition: $a\n}\n'
    )
    with pytest.raises(RulesError, match=r"r\.yar:9: severity 'extreme' is not one of critical"):
        load_rules(tmp_path)
    (tmp_path / "r.yar").write_text(
        'rule r {\n  meta:\n    severity = 5\n  strings: $a = "abc"\n  condition: $a\n}\n'
    )
    with pytest.raises(RulesError, match=r"r\.yar:3: severity 5 is not one of"):
        load_rules(tmp_path)


def test_severity_in_comments_and_strings_is_not_a_meta(tmp_path):
    """Only real meta lines are checked: not commented-out ones, nor text inside a rule string."""
    (tmp_path / "r.yar").write_text(
        'rule r {\n  /* severity = "info" */\n  // severity = "extreme"\n  meta:\n    severity = "low"\n'
        '    url = "http://example.com//x"\n  strings: $a = "severity = x"\n  condition: $a\n}\n'
    )
    assert load_rules(tmp_path).yara_rules == 1


def test_same_rule_name_in_two_files_is_allowed(tmp_path):
    """Each file gets its own namespace, so rule names may repeat across files."""
    for name in ("a.yar", "b.yar"):
        (tmp_path / name).write_text('rule same { strings: $a = "abc" condition: $a }\n')
    assert load_rules(tmp_path).yara_rules == 2


def test_version_changes_with_any_rule_byte(tmp_path):
    """The rules version is a digest of the rule files: edit one byte and it changes."""
    (tmp_path / "r.yar").write_text('rule r { strings: $a = "abc" condition: $a }\n')
    (tmp_path / "h.hsb").write_text(f"{'a' * 64}:*:Test.Sig\n")
    v1 = load_rules(tmp_path).version
    (tmp_path / "h.hsb").write_text(f"{'b' * 64}:*:Test.Sig\n")
    assert load_rules(tmp_path).version != v1


def test_empty_rules_dir_is_an_error(tmp_path):
    """A rules directory with no rule files is refused rather than scanning with nothing."""
    with pytest.raises(RulesError, match="no rule files"):
        load_rules(tmp_path)


def test_hash_lists_parse_all_forms(tmp_path):
    """hsb takes sha256 and sha1 with a size or '*'; hdb takes md5; a 4th field is ignored."""
    sha = hashlib.sha256(b"x").hexdigest()
    sha1 = hashlib.sha1(b"x").hexdigest()
    md5 = hashlib.md5(b"x").hexdigest()
    (tmp_path / "a.hsb").write_text(f"# comment\n\n{sha}:1:Sig.A\n{sha1}:*:Sig.B:73\n")
    (tmp_path / "b.hdb").write_text(f"{md5}:1:Sig.C\n")
    db = HashDb()
    assert parse_hash_list(tmp_path / "a.hsb", db, "a.hsb") == 2
    assert parse_hash_list(tmp_path / "b.hdb", db, "b.hdb") == 1
    assert db.lookup("sha256", sha, 1) == ["Sig.A"]
    assert db.lookup("sha256", sha, 2) == []
    assert db.lookup("sha1", sha1, 12345) == ["Sig.B"]
    assert db.wants("md5", 1) and not db.wants("md5", 2)


@pytest.mark.parametrize(
    ("suffix", "line", "message"),
    [
        (".hsb", "abc:1:Name", "hex digits"),
        (".hsb", f"{'a' * 64}:x:Name", "size must be"),
        (".hsb", f"{'a' * 64}:1", "expected HASH:SIZE:NAME"),
        (".hsb", f"{'a' * 64}:1:bad name", "bad signature name"),
        (".hdb", f"{'a' * 64}:1:Name", "not allowed in .hdb"),
        (".hsb", f"{'a' * 32}:1:Name", "not allowed in .hsb"),
    ],
)
def test_bad_hash_lines_name_file_and_line(tmp_path, suffix, line, message):
    """Each malformed hash line is refused with its file, line number and what is wrong."""
    path = tmp_path / f"list{suffix}"
    path.write_text(f"# header\n{line}\n")
    with pytest.raises(RulesError, match=message) as info:
        parse_hash_list(path, HashDb(), f"list{suffix}")
    assert f"list{suffix}:2" in str(info.value)


def test_the_engine_version_names_the_installed_yara_x_release():
    """Read from the dist-info directory's name, it agrees with the package metadata."""
    release = ENGINE_VERSION.rsplit("/", 1)[1]
    assert release == importlib.metadata.version("yara-x")
