"""Enrolment: a product key becomes this install's bearer token and an ``[upstream]`` section.

The token is stored 0600 under the state dir (never in the config file, which may be shared or
backed up), and the cloud keeps only its hash, apart from the records.
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import structlog

from agent import config
from agent.errors import ConfigError, UpstreamError
from agent.upstream.client import ClientSettings, UpstreamClient
from agent.upstream.reputation import Reputation

__all__ = ["client_from_config", "enroll", "read_token", "reputation_from_config", "token_path", "unenroll"]

log = structlog.get_logger("endpoint-agent")

_SECTION = re.compile(r"(?ms)^\[upstream\][^\[]*")


def token_path(cfg: config.Config) -> Path:
    """Where the bearer token lives."""
    up = cfg.upstream
    return Path(up.token_file).expanduser() if up.token_file else cfg.state_dir / "upstream.token"


def read_token(cfg: config.Config) -> str:
    """The stored token; refused when others may read it."""
    path = token_path(cfg)
    try:
        st = path.stat()
        token = path.read_text().strip()
    except FileNotFoundError as exc:
        raise ConfigError(f"no upstream token at {path}; run endpoint-agent enroll") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read the upstream token: {exc.strerror}") from exc
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} is readable by others; chmod 600 it")
    return token


def client_from_config(cfg: config.Config) -> UpstreamClient | None:
    """A client for the configured cloud, or None when no upstream is configured."""
    up = cfg.upstream
    if not up.url:
        return None
    settings = ClientSettings(url=up.url, ca_file=up.ca_file, pins=up.pin_sha256, timeout=up.timeout)
    return UpstreamClient(settings, read_token(cfg))


def reputation_from_config(
    cfg: config.Config,
    log_sent: Callable[[str, str, str, bytes], None] | None,
    sending: Callable[[str, str], AbstractContextManager[Any]] | None = None,
) -> Reputation | None:
    """Private reputation lookups for the configured cloud, synced if the held list is stale."""
    up = cfg.upstream
    if not up.url or not up.prefix_key:
        return None
    path = cfg.state_dir / "prefixes.json"
    reputation = Reputation(client_from_config(cfg), up.prefix_key, path, log_sent, sending)
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        age = float("inf")
    if age >= up.reputation_interval:
        try:
            reputation.sync()
            path.touch(exist_ok=True)
        except UpstreamError as exc:
            log.warning("prefix_list_sync_failed", error=str(exc))
    return reputation


def enroll(
    cfg: config.Config, url: str, product_key: str, *, ca_file: str = "", pin: str = "", prefix_key: str = ""
) -> Path:
    """Enrol with the cloud at ``url``; store the token and write ``[upstream]`` into the config file."""
    ca = str(Path(ca_file).resolve()) if ca_file else ""
    settings = ClientSettings(url=url, ca_file=ca, pins=(pin,) if pin else (), timeout=cfg.upstream.timeout)
    with UpstreamClient(settings) as client:
        token = client.enroll(product_key)
    path = token_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    tmp.replace(path)
    _write_section(cfg.config_file, url, ca, pin, prefix_key)
    return path


def unenroll(cfg: config.Config) -> bool:
    """Forget the enrolment: delete the token and the ``[upstream]`` section; True if there was one."""
    path = token_path(cfg)
    had = path.exists()
    path.unlink(missing_ok=True)
    if cfg.config_file.exists():
        text = cfg.config_file.read_text()
        stripped = _SECTION.sub("", text)
        if stripped != text:
            cfg.config_file.write_text(stripped.rstrip() + "\n" if stripped.strip() else "")
            had = True
    return had


def _write_section(config_file: Path, url: str, ca_file: str, pin: str, prefix_key: str) -> None:
    """Replace (or add) the ``[upstream]`` section of the config file, keeping everything else."""
    lines = ["[upstream]", f"url = {_quote(url)}"]
    if ca_file:
        lines.append(f"ca_file = {_quote(ca_file)}")
    if pin:
        lines.append(f"pin_sha256 = [{_quote(pin)}]")
    if prefix_key:
        lines.append(f"prefix_key = {_quote(prefix_key)}")
    section = "\n".join(lines) + "\n"
    text = config_file.read_text() if config_file.exists() else ""
    text = _SECTION.sub("", text).rstrip()
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text((text + "\n\n" if text else "") + section)
    config.load(config_file)  # fail now, naming the key, rather than at the next start


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
