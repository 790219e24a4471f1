"""The ASGI application: routes, error answers and the request log.

Every answer is JSON. A refusal is ``{"error": "<code>", "reason": "<text>"}`` with a 4xx status;
the reason names what was wrong, never a submitted value. Endpoints (``Authorization: Bearer
<token>`` on all but enroll, health and the prefix list):

- ``POST /v1/enroll`` ``{"product_key": str}`` → ``{"token": str, "token_type": "Bearer"}``; 403 for
  an unknown key.
- ``POST /v1/verdicts``: a JSON or msgpack list of wire records (gzip allowed) →
  ``{"accepted": int, "duplicate": int}``.
- ``POST /v1/reputation/search``, ``GET /v1/reputation/prefixes``, ``GET|DELETE /v1/subjects/{p}``.
- ``GET /v1/health`` → ``{"status": "ok", "schema": 1, "prefix_version": int}``.

The exact formats are in :mod:`cloud.routes`; the signed prefix list in :mod:`cloud.signing`.

Logs never carry a token, product key, pseudonym or record field: one ``request_handled`` event per
request with the route template, status and duration.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud.errors import RequestRejected
from cloud.routes import ROUTES
from cloud.service import Service, Settings

__all__ = ["RequestLog", "create_app"]

log = structlog.get_logger("endpoint-cloud")


def _rejected(_request: Request, exc: Exception) -> Response:
    if isinstance(exc, RequestRejected):
        body = {"error": exc.code, "reason": exc.reason}
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)
    if isinstance(exc, HTTPException):
        body = {"error": "http_error", "reason": str(exc.detail)}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
    log.error("request_failed", error=type(exc).__name__)
    return JSONResponse({"error": "internal", "reason": "internal error"}, status_code=500)


class RequestLog:
    """ASGI middleware: one ``request_handled`` event per request, naming the route, not the path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on and log its route template, status and duration."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [0]

        async def send_logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        except Exception:
            status[0] = 500
            raise
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            log.info(
                "request_handled",
                method=scope["method"],
                route=route,
                status=status[0],
                duration_ms=duration_ms,
            )


def create_app(settings: Settings) -> Starlette:
    """The Starlette app for ``settings``; stores open at startup and close at shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service = Service(settings)
        app.state.service = service
        try:
            yield
        finally:
            service.close()

    app = Starlette(
        routes=ROUTES,
        exception_handlers={RequestRejected: _rejected, HTTPException: _rejected, Exception: _rejected},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # an API answers the path it was asked, never a redirect
    app.add_middleware(RequestLog)
    return app
