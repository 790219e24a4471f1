"""The reference security cloud: a receiver for minimized verdicts, reputation and erasure.

It imports the wire schema from the agent (:mod:`agent.minimize.wire`, through :mod:`cloud.schema`)
and no other agent module. ``endpoint-cloud`` (:mod:`cloud.cli`) is its command line; the app itself
is :func:`cloud.app.create_app`, served by :mod:`cloud.serve` on uvicorn over TLS only.
"""

__all__: list[str] = []
