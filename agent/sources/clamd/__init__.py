"""clamd-compatible local socket: protocol and server.

Existing mail filters, web proxies and file-sharing apps speak clamd's protocol; this package lets
them use the agent as their scanner. :mod:`.protocol` is the sans-I/O parser, :mod:`.server` the
listener, which hands every object to a :class:`Backend`.
"""

from agent.sources.clamd.protocol import ClamdProtocolError, Parser, Prefix, Request, StreamChunk, StreamEnd
from agent.sources.clamd.server import Backend, ClamdServer
from agent.sources.clamd.settings import ClamdSettings

__all__ = [
    "Backend",
    "ClamdProtocolError",
    "ClamdServer",
    "ClamdSettings",
    "Parser",
    "Prefix",
    "Request",
    "StreamChunk",
    "StreamEnd",
]
