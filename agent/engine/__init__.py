"""The scan engine: rules, limits, archive walking, per-worker scanning and the worker pool."""

from agent.engine.archives import Budget, archive_format
from agent.engine.hashlists import HashDb, parse_hash_list
from agent.engine.limits import DEFAULT_LIMITS, LIMIT_NAMES, ScanLimits
from agent.engine.pool import IDLE, Failure, WorkerPool
from agent.engine.rules import ENGINE_VERSION, RulesCache, RuleSet, load_rules
from agent.engine.scanner import Engine, limit_detection
from agent.errors import LimitExceeded

__all__ = [
    "DEFAULT_LIMITS",
    "ENGINE_VERSION",
    "IDLE",
    "LIMIT_NAMES",
    "Budget",
    "Engine",
    "Failure",
    "HashDb",
    "LimitExceeded",
    "RuleSet",
    "RulesCache",
    "ScanLimits",
    "WorkerPool",
    "archive_format",
    "limit_detection",
    "load_rules",
    "parse_hash_list",
]
