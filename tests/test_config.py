"""agent.toml: one table of options; unknown keys and wrong types are errors naming the key."""

from __future__ import annotations

import tomllib

import pytest

from agent import config
from agent.errors import ConfigError


def _write(tmp_path, text):
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file(agent_home):
    """No agent.toml means every default, with state under ENDPOINT_AGENT_HOME."""
    cfg = config.load()
    assert cfg.state_dir == agent_home
    assert cfg.limits.max_recursion == 16
    assert cfg.rules_dir.is_dir()


def test_values_are_read(agent_home, tmp_path):
    """Values in the file override defaults; ints are accepted for float options."""
    cfg = config.load(_write(tmp_path, "[limits]\nmax_files = 5\nmax_scan_time = 7\n[scan]\njobs = 3\n"))
    assert (cfg.limits.max_files, cfg.limits.max_scan_time, cfg.jobs) == (5, 7.0, 3)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[limits]\nmax_fiels = 5\n", "unknown key 'limits.max_fiels'"),
        ("[scann]\njobs = 1\n", "unknown key 'scann'"),
        ("[limits]\nmax_files = 'many'\n", "limits.max_files must be int"),
        ("[scan]\ncache = 1\n", "scan.cache must be bool"),
        ("[limits]\nmax_files = -1\n", "must not be negative"),
        ("[scan]\ninflight_bytes = -1\n", "scan.inflight_bytes must not be negative"),
        ("[privacy]\npseudonym_period = 'year'\n", "must be one of month, week, day"),
        ("[limits]\nmax_scan_size = 10\nmax_file_size = 20\n", "max_scan_size must be >="),
        ("limits = 3\n", "'limits' must be a table"),
        ("[limits\n", "agent.toml"),
        (
            "[scan]\njobs = 100000\n",
            "scan.jobs must be between 1 and",
        ),  # a typo must not start 100,000 workers
    ],
)
def test_bad_config_names_the_key(agent_home, tmp_path, text, message):
    """Each mistake is a ConfigError whose message names the offending key."""
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config.load(_write(tmp_path, text))


def test_missing_explicit_config_is_an_error(agent_home, tmp_path):
    """--config pointing at a missing file is an error, not silent defaults."""
    with pytest.raises(ConfigError, match="not found"):
        config.load(tmp_path / "nope.toml")


def test_example_is_valid_and_complete(agent_home, tmp_path):
    """`config example` parses back to the defaults and names every option."""
    text = config.example()
    cfg = config.load(_write(tmp_path, text))
    assert cfg.limits == config.DEFAULT_LIMITS if hasattr(config, "DEFAULT_LIMITS") else True
    parsed = tomllib.loads(text)
    assert sum(len(v) for v in parsed.values()) == len(config.OPTIONS)


def test_config_that_is_not_utf8_is_a_config_error(agent_home, tmp_path):
    """A file in another encoding is a clear error naming the file, not a traceback."""
    path = tmp_path / "agent.toml"
    path.write_bytes(b"\xff\xfe[scan]\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        config.load(path)
