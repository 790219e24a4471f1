"""The agent's errors: one tree, translated from third-party errors at the boundary.

::

    AgentError
    ├── ConfigError(AgentError, ValueError)   bad agent.toml, policy or option; stops start-up
    ├── RulesError                            a rule or hash-list file that does not compile; stops start-up
    ├── ScanError                             one object could not be scanned; that object only
    │   ├── ScanTimeout                       MaxScanTime hit
    │   └── LimitExceeded                     another limit hit (size, depth, files, ratio)
    ├── ExtractError                          text extraction of one object failed; classification only
    ├── ProtocolError                         a peer spoke a protocol wrongly
    └── UpstreamError                         the security cloud could not take a request
        ├── UpstreamUnavailable               try again later (network, 5xx, 429; maybe retry_after)
        └── UpstreamRejected                  the cloud refused this payload (4xx): never resend as is

A class exists only where some caller handles it differently from its parent.
"""

from __future__ import annotations

__all__ = [
    "AgentError",
    "ConfigError",
    "ExtractError",
    "LimitExceeded",
    "ProtocolError",
    "RulesError",
    "ScanError",
    "ScanTimeout",
    "UpstreamError",
    "UpstreamRejected",
    "UpstreamUnavailable",
]


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""


class ConfigError(AgentError, ValueError):
    """Configuration or policy is invalid; the message names the key or file."""


class RulesError(AgentError):
    """Rules or hash lists failed to load; the message names file and line."""


class ScanError(AgentError):
    """One object could not be scanned; the message is a short reason without paths or content."""


class LimitExceeded(ScanError):
    """A scan limit was hit; ``which`` is the limit's name, e.g. ``MaxRecursion``."""

    def __init__(self, which: str, detail: str = "") -> None:
        super().__init__(f"{which} exceeded" + (f": {detail}" if detail else ""))
        self.which = which


class ScanTimeout(LimitExceeded):
    """The per-object scan time limit was hit."""

    def __init__(self, detail: str = "") -> None:
        super().__init__("MaxScanTime", detail)


class ExtractError(AgentError):
    """Text extraction of one object failed; the scan verdict stands, classification is incomplete."""


class ProtocolError(AgentError):
    """A peer sent bytes that do not follow the protocol."""


class UpstreamError(AgentError):
    """The security cloud could not take a request; the message has no payload content."""


class UpstreamUnavailable(UpstreamError):
    """Transient: retry later, no sooner than ``retry_after`` seconds when the cloud said so."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamRejected(UpstreamError):
    """The cloud refused the payload (a 4xx other than 429); ``status`` and the cloud's ``reason``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"refused with {status}: {reason}")
        self.status = status
        self.reason = reason
