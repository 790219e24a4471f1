"""The endpoints and their exact request and response formats.

All bodies are JSON unless noted; refusals are ``{"error": code, "reason": text}``.

``POST /v1/enroll`` (no token). Body ``{"product_key": "<string>"}``. 200
``{"token": "<43 url-safe base64 chars, 256 bits>", "token_type": "Bearer"}``; 403 ``unknown_product_key``.

``POST /v1/verdicts``. ``Content-Type: application/json`` or ``application/msgpack`` (also
``application/vnd.msgpack``, ``application/x-msgpack``), optional ``Content-Encoding: gzip``. Body: a
list of 1 to 1,000 wire records (:class:`agent.minimize.wire.Record`). 200 ``{"accepted": n,
"duplicate": m}``: a ``record_id`` already stored counts as duplicate and is not stored again; the
batch is stored in one transaction. Refusals store nothing: 400 ``malformed_body`` / ``bad_gzip``,
413 ``body_too_large`` / ``inflated_too_large`` (8 MiB each by default), 415
``unsupported_media_type`` / ``unsupported_encoding``, 422 ``invalid_record`` (unknown field, wrong
type, bad pattern, more than 1,000 records; the reason gives the path, e.g. ``$[3].sha256``) or
``empty_batch``.

``POST /v1/reputation/search``. Body ``{"prefixes": [16 strings of 8 lower-case hex digits]}``
(exactly 16; duplicates allowed). 200 ``{"matches": [{"sha256": "<64 hex>", "name": "<detection
name>"}], "cache_seconds": n}`` listing every known-bad hash under any of the prefixes; nothing about
the request is stored. 400 ``bad_request`` for any other shape.

``GET /v1/reputation/prefixes[?since=V]`` (no token): the signed prefix list, see
:mod:`cloud.signing`. 400 ``bad_request`` for a ``since`` that is not a non-negative integer or any
other query parameter.

``GET /v1/rules/latest`` (no token): the newest published rule bundle, ``application/gzip``, with
``ETag``, ``Rules-Version`` and ``Minimum-Wait`` (seconds); 304 when ``If-None-Match`` names it; 404
``no_rules`` when none is published. See :mod:`cloud.rules_feed`.

``GET /v1/subjects/{pseudonym}``: 200 ``{"pseudonym": p, "records": [record, ...]}``.
``DELETE /v1/subjects/{pseudonym}``: 200 ``{"receipt_id": "<32 hex>", "pseudonym": p, "erased": n,
"erased_at": "YYYY-MM-DDTHH:MM:SSZ"}``. 400 ``bad_pseudonym`` unless p matches the wire schema.

``POST /v1/analytics`` (no token; refused with one): anonymous analytics reports, see
:mod:`cloud.analytics`.

Every endpoint but enroll, health, analytics, the prefix list and the rules feed needs ``Authorization: Bearer
<token>`` (401 ``unauthorized`` otherwise) and is rate limited per token (429 ``rate_limited`` with
``Retry-After`` in whole seconds).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Annotated, Any, TypeVar

import msgspec
import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cloud.analytics import receive as analytics_receive
from cloud.body import media_of, read_body
from cloud.errors import RequestRejected
from cloud.reputation import PREFIX_BYTES, SEARCH_BATCH
from cloud.rules_feed import etag_matches
from cloud.schema import SCHEMA_VERSION, decode_records, valid_pseudonym
from cloud.service import service_of
from cloud.signing import sign_payload

__all__ = ["ROUTES"]

log = structlog.get_logger("endpoint-cloud")
_SMALL_BODY = 16 * 1024
_T = TypeVar("_T")
_SINCE = re.compile(r"^[0-9]{1,18}$")
_Prefix = Annotated[str, msgspec.Meta(pattern=rf"^[0-9a-f]{{{2 * PREFIX_BYTES}}}$")]


class EnrollRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of ``POST /v1/enroll``."""

    product_key: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class SearchRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of ``POST /v1/reputation/search``: exactly ``SEARCH_BATCH`` prefixes."""

    prefixes: Annotated[list[_Prefix], msgspec.Meta(min_length=SEARCH_BATCH, max_length=SEARCH_BATCH)]


async def _small(request: Request, kind: type[_T]) -> _T:
    media = media_of(request)
    body = await read_body(request, _SMALL_BODY, _SMALL_BODY)
    try:
        if media == "json":
            return msgspec.json.decode(body, type=kind)
        return msgspec.msgpack.decode(body, type=kind)
    except msgspec.DecodeError as exc:
        raise RequestRejected(400, "bad_request", str(exc)) from exc


async def enroll(request: Request) -> Response:
    """Issue a bearer token for a known product key."""
    service = service_of(request)
    offered = await _small(request, EnrollRequest)
    key_id = service.product_key_id(offered.product_key)
    if key_id is None:
        log.info("enroll_refused")
        raise RequestRejected(403, "unknown_product_key", "the product key is not accepted here")
    token = service.auth.enroll(key_id)
    log.info("install_enrolled")
    return JSONResponse({"token": token, "token_type": "Bearer"})


async def verdicts(request: Request) -> Response:
    """Store a batch of wire records, all or nothing, once per ``record_id``."""
    service = service_of(request)
    service.authorize(request)
    media = media_of(request)
    body = await read_body(request, service.settings.max_body, service.settings.max_inflated)
    try:
        records = decode_records(body, media)
    except msgspec.ValidationError as exc:
        log.info("batch_rejected", error="invalid_record")
        raise RequestRejected(422, "invalid_record", str(exc)) from exc
    except msgspec.DecodeError as exc:
        log.info("batch_rejected", error="malformed_body")
        raise RequestRejected(400, "malformed_body", str(exc)) from exc
    if not records:
        raise RequestRejected(422, "empty_batch", "a batch holds at least one record")
    accepted, duplicate = service.records.store_batch(records)
    log.info("batch_stored", records=len(records), accepted=accepted, duplicate=duplicate)
    return JSONResponse({"accepted": accepted, "duplicate": duplicate})


async def search(request: Request) -> Response:
    """Full known-bad hashes under a fixed-size batch of prefixes."""
    service = service_of(request)
    service.authorize(request)
    wanted = await _small(request, SearchRequest)
    matches = service.reputation.search(wanted.prefixes)
    seconds = service.settings.cache_seconds
    return JSONResponse(
        {"matches": [dataclasses.asdict(m) for m in matches], "cache_seconds": seconds},
        headers={"Cache-Control": f"private, max-age={seconds}"},
    )


def _prefix_document(request: Request) -> dict[str, Any]:
    params = request.query_params
    if set(params) - {"since"} or not _SINCE.fullmatch(params.get("since", "0")):
        raise RequestRejected(400, "bad_request", "the only parameter is since, a non-negative integer")
    reputation = service_of(request).reputation
    since = int(params["since"]) if "since" in params else None
    if since is None or since > reputation.version():
        version, prefixes = reputation.prefixes()
        return {"kind": "full", "since": None, "version": version, "prefixes": prefixes}
    delta = reputation.delta(since)
    return {
        "kind": "delta",
        "since": since,
        "version": delta.version,
        "added": delta.added,
        "removed": delta.removed,
    }


async def prefixes(request: Request) -> Response:
    """The signed list of known-bad prefixes, in full or as a delta."""
    document = {**_prefix_document(request), "prefix_bytes": PREFIX_BYTES}
    envelope = sign_payload(service_of(request).signing_key, document)
    return Response(envelope, media_type="application/json", headers={"Cache-Control": "no-cache"})


async def rules_latest(request: Request) -> Response:
    """The newest rule bundle, or 304 when the agent holds it; nothing about the request is stored."""
    latest = service_of(request).rules.latest()
    if latest is None:
        raise RequestRejected(404, "no_rules", "no rule bundle is published")
    if etag_matches(request.headers.get("if-none-match"), latest.etag):
        return Response(status_code=304, headers=latest.headers())
    return Response(latest.body, media_type="application/gzip", headers=latest.headers())


def _pseudonym(request: Request) -> str:
    service_of(request).authorize(request)
    pseudonym = str(request.path_params["pseudonym"])
    if not valid_pseudonym(pseudonym):
        raise RequestRejected(400, "bad_pseudonym", "a pseudonym is 32 lower-case hex digits")
    return pseudonym


async def subject_access(request: Request) -> Response:
    """Every record stored under a pseudonym."""
    pseudonym = _pseudonym(request)
    bodies = service_of(request).records.subject(pseudonym)
    content = f'{{"pseudonym":"{pseudonym}","records":[{",".join(bodies)}]}}'
    return Response(content, media_type="application/json")


async def subject_erase(request: Request) -> Response:
    """Erase every record stored under a pseudonym and return the receipt."""
    pseudonym = _pseudonym(request)
    receipt = service_of(request).records.erase(pseudonym)
    log.info("subject_erased", erased=receipt.erased)
    return JSONResponse(dataclasses.asdict(receipt))


async def health(request: Request) -> Response:
    """Liveness, the schema version and the prefix-list version."""
    version = service_of(request).reputation.version()
    return JSONResponse({"status": "ok", "schema": SCHEMA_VERSION, "prefix_version": version})


ROUTES = [
    Route("/v1/enroll", enroll, methods=["POST"]),
    Route("/v1/verdicts", verdicts, methods=["POST"]),
    Route("/v1/reputation/search", search, methods=["POST"]),
    Route("/v1/reputation/prefixes", prefixes, methods=["GET"]),
    Route("/v1/rules/latest", rules_latest, methods=["GET"]),
    Route("/v1/subjects/{pseudonym}", subject_access, methods=["GET"]),
    Route("/v1/subjects/{pseudonym}", subject_erase, methods=["DELETE"]),
    Route("/v1/health", health, methods=["GET"]),
    Route("/v1/analytics", analytics_receive, methods=["POST"]),  # no token; see cloud.analytics
]
