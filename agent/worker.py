"""The seam between the parent and the scan workers, light enough for the parent to import.

The parent imports this module to build a :class:`WorkerContext` and to name :func:`setup` for the
worker pool. Only the workers import :mod:`agent.pipeline` and, through it, the classifiers and
their parsers, so the command line starts without loading them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.engine import RuleSet, ScanLimits, sandbox
from agent.engine.sandbox import DEFAULT_SANDBOX, SandboxSettings
from agent.minimize import Identity, Policy

if TYPE_CHECKING:
    from agent.model import Outcome, ScanRequest

__all__ = ["WorkerContext", "setup"]


@dataclass(frozen=True, slots=True)
class WorkerContext:
    """Everything a scan worker needs, sent to it once when it starts."""

    rules: RuleSet
    limits: ScanLimits
    policy: Policy
    identity: Identity
    sandbox: SandboxSettings = DEFAULT_SANDBOX


def setup(ctx: WorkerContext) -> Callable[[ScanRequest], Outcome]:
    """Worker entry: import the pipeline and build this worker's handler."""
    sandbox.confine(ctx.limits, len(ctx.rules.yara), ctx.sandbox)  # before any content is parsed
    sandbox.return_large_buffers()
    from agent import pipeline  # noqa: PLC0415 - deliberately late: the parent never loads classifiers

    return pipeline.setup(ctx)
