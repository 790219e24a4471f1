"""E-mail (RFC 5322 / MIME): address and subject headers, text parts, nested messages, attachments."""

from __future__ import annotations

import contextlib
import dataclasses
import email.errors
import email.policy
import io
import struct
import zipfile
from email.message import Message
from email.parser import BytesParser
from typing import TYPE_CHECKING, TypeAlias

from agent.classify.extract.base import TextSink, decode_text, drop_surrogates
from agent.classify.extract.markup import html_to_text
from agent.classify.extract.plain import cards_to_text
from agent.classify.kinds import HEAD_SIZE, sniff, sniff_zip
from agent.errors import ExtractError

if TYPE_CHECKING:
    from collections.abc import Callable

    from agent.classify.extract.base import ExtractLimits

__all__ = ["MAX_DEPTH", "Recurse", "extract_eml"]

Recurse: TypeAlias = "Callable[[bytes, str, ExtractLimits, int], str]"
"""Extracts an attachment: ``(data, fmt, limits, depth) -> text``."""

MAX_DEPTH = 3
_HEADERS = frozenset({"from", "to", "cc", "reply-to", "subject"})
_CARDS = frozenset({"calendar", "vcard", "x-vcard", "directory"})
_MAX_PARSED_HEADER = 4096  # longer values are written as found: header parsing is superlinear
_UTF8_LIKE = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
_HEADER_ERRORS = (email.errors.MessageError, LookupError, ValueError, TypeError, AttributeError)
_ZIP_ERRORS = (zipfile.BadZipFile, struct.error, OSError, EOFError, ValueError, NotImplementedError)


def extract_eml(data: bytes, limits: ExtractLimits, depth: int, recurse: Recurse) -> str:
    """Return the headers that name people, the text parts and the attachments' text of a message.

    Args:
        data: the message's bytes.
        limits: ``max_chars`` bounds the output; ``max_members`` the number of MIME parts looked at.
        depth: how deep this message sits in attachments already (0 for a file on disk).
        recurse: extracts an attachment; called only while ``depth < MAX_DEPTH``.

    Returns:
        ``From:``/``To:``/``Cc:``/``Reply-To:``/``Subject:`` lines, then the decoded text parts (HTML
        stripped), nested messages and text from attachments.
    """
    message = BytesParser(policy=email.policy.default).parsebytes(data)
    sink = TextSink(limits.max_chars)
    for count, part in enumerate(message.walk()):
        if count >= limits.max_members or sink.full:
            break
        if count == 0:
            _write_headers(part, sink)
        if part.get_content_type() == "message/rfc822":
            _write_headers(_inner(part), sink)
        if not part.is_multipart():
            _write_part(part, sink, limits, depth, recurse)
    return drop_surrogates(sink.getvalue())


def _inner(part: Message) -> Message:
    """Return the message inside a ``message/rfc822`` part (or the part itself if it has none)."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    return part


def _write_headers(message: Message, sink: TextSink) -> None:
    """Write the From, To, Cc, Reply-To and Subject headers as ``Name: value`` lines."""
    for name, raw in message.raw_items():
        if name.lower() not in _HEADERS:
            continue
        value = raw  # an unparsable header still holds its addresses as written
        if len(raw) <= _MAX_PARSED_HEADER:
            with contextlib.suppress(*_HEADER_ERRORS):
                value = str(message.policy.header_fetch_parse(name, raw))
        sink.write(f"{name}: {' '.join(value.split())}")
        sink.sep("\n")


def _write_part(part: Message, sink: TextSink, limits: ExtractLimits, depth: int, recurse: Recurse) -> None:
    """Write one leaf part: text parts decoded, other parts extracted as attachments."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes) or not payload:
        return
    sink.sep("\n")
    if part.get_content_maintype() != "text":
        if depth < MAX_DEPTH:
            _write_attachment(
                payload, part.get_filename() or "", sink, limits=limits, depth=depth, recurse=recurse
            )
        return
    text = _decode(payload, part.get_content_charset())
    subtype = part.get_content_subtype()
    if subtype == "html":
        html_to_text(text, sink)
    elif subtype in _CARDS:
        cards_to_text(text, sink)
    else:
        sink.write(text)


def _decode(payload: bytes, charset: str | None) -> str:
    """Decode a text part in its declared charset, falling back to the robust guess."""
    if charset and charset.lower() not in _UTF8_LIKE:
        try:
            return payload.decode(charset)
        except (LookupError, ValueError):
            pass
    return decode_text(payload)


def _write_attachment(
    payload: bytes, filename: str, sink: TextSink, *, limits: ExtractLimits, depth: int, recurse: Recurse
) -> None:
    """Extract an attachment whose format has text (office, pdf, text-like) with the remaining budget."""
    fmt = sniff(payload[:HEAD_SIZE], filename).fmt
    if fmt == "zip":
        fmt = _zip_format(payload)
    try:
        text = recurse(payload, fmt, dataclasses.replace(limits, max_chars=sink.left), depth + 1)
    except ExtractError:
        return  # one unreadable attachment leaves the rest of the message readable
    sink.write(text)


def _zip_format(payload: bytes) -> str:
    """Tell an Office / ODF document from a plain zip by its member names."""
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            return sniff_zip(archive).fmt
    except _ZIP_ERRORS:
        return "zip"
