"""Event sources that produce scan requests: the walk, the sweep, file events, programs, clamd."""

from agent.sources.walk import Walker, WalkError

__all__ = ["WalkError", "Walker"]
