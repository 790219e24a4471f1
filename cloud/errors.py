"""The cloud's errors: one tree, translated to HTTP answers at the edge.

::

    CloudError
    ├── SetupError          bad option, key or TLS file; stops start-up
    └── RequestRejected     a request the cloud refuses; carries the HTTP status, a code and a reason

A ``RequestRejected`` reason names what was wrong (a field path, a limit) and never echoes a value.
"""

from __future__ import annotations

__all__ = ["CloudError", "RequestRejected", "SetupError"]


class CloudError(Exception):
    """Base of every error the cloud raises on purpose."""


class SetupError(CloudError):
    """A command-line option, key file or certificate is unusable; the message says which."""


class RequestRejected(CloudError):
    """A request is refused with ``status`` (4xx), a short machine ``code`` and a human ``reason``."""

    def __init__(self, status: int, code: str, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {reason}")
        self.status = status
        self.code = code
        self.reason = reason
        self.headers = headers or {}
