"""Structured logging (structlog) with a redaction processor as the last safety net.

Code should not hand paths, names or content to the logger in the first place; :class:`Redactor`
makes sure that what slips through does not reach the log stream anyway. It replaces:

- every value under a sensitive key (``path``, ``name``, ``user``, ``host``, ``cmdline`` ...),
- path-like substrings, e-mail addresses, IBAN-like and card-number-like runs, the user's name,
  the host name and the home directory anywhere in any string value (rendered tracebacks included),
- secrets under secret-like keys (``token``, ``key``, ``secret``, ``password``, ``authorization``),

with a keyed token (``tok:`` + 10 hex digits of HMAC-SHA256 under a key derived from the master
secret), so equal values still correlate within an install but cannot be reversed or brute-forced
without the key. CR, LF and other control characters are escaped, so a file name cannot forge a line.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import hmac
import logging
import os
import re
import secrets
import socket
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog
import structlog.tracebacks

__all__ = ["SENSITIVE_KEYS", "Redactor", "configure", "enabled", "get_logger"]

SENSITIVE_KEYS = frozenset(
    {
        "path", "file", "filename", "name", "member", "display", "user", "username", "host", "hostname",
        "cmdline", "cwd", "exe", "environ", "value", "text", "content", "email",
        "token", "key", "secret", "password", "authorization", "product_key", "iban", "card",
    }
)  # fmt: skip
_PATHISH = re.compile(r"(?:[A-Za-z]:\\|\\\\|~/|/)[^\s\"'<>|,;()\[\]{}]*")
_EMAIL = re.compile(r"[\w.%+\-]+@[\w\-]+(?:\.[\w\-]+)+")
# An IBAN (country, check digits, 11-30 alphanumerics, spaces allowed) or a run of 12-19 digits with
# optional single separators (card numbers, account and ID numbers): tokenized wherever they stand.
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Za-z0-9]){11,30}(?![A-Za-z0-9])")
_LONG_NUMBER = re.compile(r"(?<![\d])\d(?:[ -]?\d){11,18}(?![\d])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_state = {"level": logging.INFO}


_EVENT_NAME = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")  # snake_case verb_noun: a name from the code


def _escape_control(match: re.Match[str]) -> str:
    char = match.group()
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char, f"\\x{ord(char):02x}")


def _local_literals() -> list[str]:
    found: list[str] = []
    with contextlib.suppress(Exception):
        found.append(getpass.getuser())
    with contextlib.suppress(OSError):
        found.append(socket.gethostname())
    found.append(os.path.expanduser("~"))
    return sorted({v for v in found if len(v) >= 3 and v != "/"}, key=len, reverse=True)


class Redactor:
    """A structlog processor that tokenizes personal values and escapes control characters."""

    def __init__(self, key: bytes | None = None, literals: list[str] | None = None) -> None:
        self._key = key or secrets.token_bytes(32)
        self._literals = literals if literals is not None else _local_literals()
        # A local name is replaced where it stands as a word of its own (in a path, a sentence), not
        # inside another word: user "root" must not turn the event "watch_root_started" into a token.
        self._literal_re = (
            re.compile("|".join(rf"(?<![A-Za-z0-9_]){re.escape(v)}(?![A-Za-z0-9_])" for v in self._literals))
            if self._literals
            else None
        )

    def token(self, value: object) -> str:
        """The keyed token standing in for ``value``."""
        raw = value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogateescape")
        return "tok:" + hmac.new(self._key, raw, hashlib.sha256).hexdigest()[:10]

    def scrub(self, text: str) -> str:
        """Tokenize path-like parts, e-mails and local names in ``text``; escape control characters."""
        if self._literal_re is not None:
            text = self._literal_re.sub(lambda m: self.token(m.group()), text)
        text = _EMAIL.sub(lambda m: self.token(m.group()), text)
        text = _IBAN.sub(lambda m: self.token(m.group()), text)
        text = _LONG_NUMBER.sub(lambda m: self.token(m.group()), text)
        text = _PATHISH.sub(lambda m: self.token(m.group()) if len(m.group()) > 1 else m.group(), text)
        return _CONTROL.sub(_escape_control, text)

    def _value(self, key: str, value: object) -> object:
        if key in SENSITIVE_KEYS and value is not None and not isinstance(value, bool | int | float):
            return self.token(value)
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, bytes):
            return self.token(value)
        if isinstance(value, Mapping):
            return {str(k): self._value(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._value(key, v) for v in value]
        if isinstance(value, bool | int | float) or value is None:
            return value
        return self.scrub(str(value))

    def __call__(
        self, _logger: object, _method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Process one event dict (structlog processor protocol)."""
        for key in list(event):
            if key == "event":
                name = str(event[key])
                event[key] = name if _EVENT_NAME.fullmatch(name) else self.scrub(name)
            else:
                event[key] = self._value(key, event[key])
        return event


def configure(
    level: str = "info", fmt: str = "auto", redactor: Redactor | None = None, stream: TextIO | None = None
) -> None:
    """Configure structlog once: JSON lines off a terminal, console rendering on one."""
    out = stream or sys.stderr
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # Tracebacks never carry local variables: they could hold file content or personal values.
    no_locals = structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
    processors.append(
        structlog.processors.format_exc_info if console else structlog.processors.ExceptionRenderer(no_locals)
    )
    processors.append(redactor or Redactor())
    processors.append(
        structlog.dev.ConsoleRenderer(colors=out.isatty()) if console else structlog.processors.JSONRenderer()
    )
    _state["level"] = _LEVELS[level]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def enabled(level: str) -> bool:
    """Whether events at ``level`` are emitted (lets hot paths skip building filtered events)."""
    return _LEVELS[level] >= _state["level"]


def get_logger() -> Any:  # noqa: ANN401 - structlog's bound logger type is dynamic
    """Return the agent's logger."""
    return structlog.get_logger("endpoint-agent")
