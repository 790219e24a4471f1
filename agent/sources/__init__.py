"""Event sources that produce scan requests."""

from agent.sources.walk import Walker, WalkError, stat_key

__all__ = ["WalkError", "Walker", "stat_key"]
