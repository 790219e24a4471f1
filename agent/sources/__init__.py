"""Event sources that produce scan requests."""

from agent.sources.walk import Walker, WalkError

__all__ = ["WalkError", "Walker"]
