"""Logging for the cloud: structlog JSON lines on stderr, uvicorn's own warnings folded in.

Callers pass counts, codes and route templates only. No record field, token, product key or
pseudonym is ever handed to the logger, and tracebacks are rendered without local variables.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
import structlog.tracebacks

__all__ = ["configure"]


def configure(stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """Send structlog and uvicorn's loggers to ``stream`` as JSON lines."""
    out = stream or sys.stderr
    no_locals = structlog.processors.ExceptionRenderer(
        structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, no_locals, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                no_locals,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(logging.WARNING)
        logger.propagate = False
