"""Request bodies: bounded reads, strict media types, gzip with a cap on the inflated size."""

from __future__ import annotations

import zlib

from starlette.requests import Request

from cloud.errors import RequestRejected

__all__ = ["gunzip_bounded", "media_of", "read_body"]

_MEDIA = {
    "application/json": "json",
    "application/msgpack": "msgpack",
    "application/vnd.msgpack": "msgpack",
    "application/x-msgpack": "msgpack",
}


def media_of(request: Request) -> str:
    """``json`` or ``msgpack`` from the Content-Type header; 415 for anything else."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    media = _MEDIA.get(content_type)
    if media is None:
        raise RequestRejected(
            415, "unsupported_media_type", "Content-Type must be application/json or msgpack"
        )
    return media


def _declared_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is None:
        return
    if not declared.isdigit():
        raise RequestRejected(400, "bad_content_length", "Content-Length is not a number")
    if int(declared) > limit:
        raise RequestRejected(413, "body_too_large", f"the body may be at most {limit} bytes")


async def read_body(request: Request, wire_limit: int, decoded_limit: int) -> bytes:
    """The request body, inflated if gzip'd; 413 past either limit, 415 for another encoding."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in {"identity", "gzip"}:
        raise RequestRejected(415, "unsupported_encoding", "Content-Encoding must be gzip or absent")
    _declared_length(request, wire_limit)
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > wire_limit:
            raise RequestRejected(413, "body_too_large", f"the body may be at most {wire_limit} bytes")
    if encoding == "gzip":
        return gunzip_bounded(bytes(raw), decoded_limit)
    if len(raw) > decoded_limit:
        raise RequestRejected(413, "body_too_large", f"the body may be at most {decoded_limit} bytes")
    return bytes(raw)


def gunzip_bounded(data: bytes, limit: int) -> bytes:
    """Inflate one gzip member without ever holding more than ``limit`` + 1 bytes; 413 past the limit."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    out = bytearray()
    pending = data
    try:
        while not inflater.eof:
            chunk = inflater.decompress(pending, limit + 1 - len(out))
            out += chunk
            if len(out) > limit:
                raise RequestRejected(
                    413, "inflated_too_large", f"the inflated body may be at most {limit} bytes"
                )
            pending = inflater.unconsumed_tail
            if not chunk and not pending:
                break
    except zlib.error as exc:
        raise RequestRejected(400, "bad_gzip", "the body is not valid gzip") from exc
    if not inflater.eof:
        raise RequestRejected(400, "bad_gzip", "the gzip body is truncated")
    if inflater.unused_data:
        raise RequestRejected(400, "bad_gzip", "data follows the gzip member")
    return bytes(out)
