"""Where an install puts things: the binary, the config, the state dir, the service unit and the markers.

Three layouts:

- system-wide (the default for root): ``/opt/endpoint-agent/bin``, ``/etc/endpoint-agent/agent.toml``,
  ``/var/lib/endpoint-agent`` (the unit's ``StateDirectory=``), the unit in ``/etc/systemd/system``;
- per user (``--user``, the default otherwise): ``~/.local/bin``, and the agent's own config and state
  dirs (``$ENDPOINT_AGENT_HOME`` when set, as ``endpoint-agent`` itself resolves them), the unit in
  ``~/.config/systemd/user``;
- ``--prefix P``: ``P/bin``, ``P/etc/agent.toml`` and ``P/state``; the unit still goes to the service
  manager's directory (or, with ``--no-service``, to ``P/etc``).

The retry-block marker of the age gate lives in the state dir and, outside the install, in the
user's cache dir (``$XDG_CACHE_HOME/endpoint-agent-setup``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import platformdirs

from agent import config as agent_config
from installer.agegate import MARKER_NAME, RetryBlock

__all__ = ["RECEIPT_NAME", "SERVICE_NAME", "Layout", "Scope", "default_scope", "make_layout"]

Scope = Literal["system", "user"]
SERVICE_NAME = "endpoint-agent"
RECEIPT_NAME = "install.json"
BINARY_NAME = "endpoint-agent"
_SYSTEM_STATE = Path("/var/lib") / SERVICE_NAME


@dataclass(frozen=True, slots=True)
class Layout:
    """Every path an install writes, for one scope."""

    scope: Scope
    prefix: Path | None
    binary: Path
    config_file: Path
    state_dir: Path
    unit_file: Path
    outside_marker: Path

    @property
    def receipt(self) -> Path:
        """The install receipt: what was installed, so that uninstall removes exactly that."""
        return self.state_dir / RECEIPT_NAME

    @property
    def marker(self) -> RetryBlock:
        """The age gate's retry-block marker, in the state dir and outside the install."""
        return RetryBlock((self.state_dir / MARKER_NAME, self.outside_marker))

    @property
    def clamd_socket(self) -> Path:
        """The service's clamd-compatible socket (the config leaves ``[clamd] socket`` at its default)."""
        return self.state_dir / "clamd.sock"

    @property
    def uses_state_directory(self) -> bool:
        """Whether the state dir is where systemd's ``StateDirectory=endpoint-agent`` puts it."""
        return self.scope == "system" and self.state_dir == _SYSTEM_STATE

    @property
    def installed_paths(self) -> tuple[Path, ...]:
        """The paths whose presence means an install is already there."""
        return (self.receipt, self.binary, self.config_file, self.unit_file)


def default_scope() -> Scope:
    """System-wide for root, per user otherwise."""
    return "system" if os.geteuid() == 0 else "user"


def make_layout(scope: Scope, prefix: Path | None, service: bool = True) -> Layout:
    """The layout for ``scope`` (under ``prefix`` if given); ``service=False`` keeps the unit in it."""
    outside = Path(platformdirs.user_cache_dir("endpoint-agent-setup", appauthor=False)) / MARKER_NAME
    if prefix is not None:
        prefix = prefix.expanduser().absolute()
        binary, config_file, state = (
            prefix / "bin" / BINARY_NAME,
            prefix / "etc" / "agent.toml",
            prefix / "state",
        )
    elif scope == "system":
        binary = Path("/opt") / SERVICE_NAME / "bin" / BINARY_NAME
        config_file, state = Path("/etc") / SERVICE_NAME / "agent.toml", _SYSTEM_STATE
    else:
        state, config_dir = agent_config.home_dirs()
        binary, config_file = Path.home() / ".local" / "bin" / BINARY_NAME, config_dir / "agent.toml"
    unit_dir = _unit_dir(scope) if service else config_file.parent
    return Layout(scope, prefix, binary, config_file, state, unit_dir / f"{SERVICE_NAME}.service", outside)


def _unit_dir(scope: Scope) -> Path:
    if scope == "system":
        return Path("/etc/systemd/system")
    return Path(platformdirs.user_config_dir("systemd", appauthor=False)) / "user"
