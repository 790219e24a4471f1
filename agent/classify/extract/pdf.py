"""PDF: text through pypdf, and a raw content-stream walker when pypdf fails or finds nothing."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
import zlib
from typing import TYPE_CHECKING

from agent.classify.extract.base import TextSink, decode_text, drop_surrogates
from agent.errors import ExtractError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from contextlib import AbstractContextManager
    from types import ModuleType

    from agent.classify.extract.base import ExtractLimits

__all__ = ["extract_pdf"]

# pypdf reports every robustness fix through logging; a scanner reading thousands of odd PDFs must not
# flood the agent's log with them (nor with file details).
logging.getLogger("pypdf").setLevel(logging.CRITICAL + 1)

_HEADER_WINDOW = 1024
_DICT_WINDOW = 2048
_INFLATE_CHUNK = 64 * 1024
_TOTAL_INFLATE_FACTOR = 4  # the raw walker inflates at most this many max_member_size in all
_STREAM = re.compile(rb"\bstream(?:\r\n|\n|\r)")
_FILTERS = re.compile(
    rb"/(FlateDecode|Fl|ASCIIHexDecode|AHx|ASCII85Decode|A85|LZWDecode|LZW|RunLengthDecode|RL"
    rb"|CCITTFaxDecode|CCF|DCTDecode|DCT|JBIG2Decode|JPXDecode|Crypt)\b"
)
_NOT_CONTENT = re.compile(rb"/Subtype\s*/Image|/Length1\b|/Type\s*/(?:ObjStm|XRef|Metadata|EmbeddedFile)\b")
_CONTENT_TOKEN = re.compile(
    rb"\((?:[^()\\]|\\.|\((?:[^()\\]|\\.)*\))*\)"  # literal string (one level of nested parentheses)
    rb"|<[0-9A-Fa-f\s]*>"  # hex string
    rb"|-?(?:\d+\.?\d*|\.\d+)"  # number
    rb"|[A-Za-z'\"*]+",  # operator
    re.DOTALL,
)
_STRING_ESCAPE = re.compile(rb"\\([0-7]{1,3}|\r\n|.)", re.DOTALL)
_ESCAPES = {
    b"n": b"\n",
    b"r": b"\r",
    b"t": b"\t",
    b"b": b"\b",
    b"f": b"\f",
    b"\n": b"",
    b"\r": b"",
    b"\r\n": b"",
}
_SHOW = frozenset({b"Tj", b"TJ", b"'", b'"'})
_WORD_GAP = -180.0  # a TJ adjustment below this (in thousandths of an em) is a space between words


def extract_pdf(data: bytes, limits: ExtractLimits) -> str:
    """Return the text of a PDF: pypdf first, the raw stream walker if pypdf fails or returns nothing.

    Args:
        data: the document's bytes.
        limits: ``max_chars``, ``max_pdf_pages``, ``max_member_size`` and ``max_ratio`` apply.

    Returns:
        The text of the first ``max_pdf_pages`` pages (pypdf) or of the content streams (fallback).

    Raises:
        ExtractError: not a PDF, truncated (no ``%%EOF``), encrypted, or unreadable by both readers.
    """
    if b"%PDF-" not in data[:_HEADER_WINDOW]:
        raise ExtractError("pdf: no header")
    if data.rfind(b"%%EOF") < 0:
        raise ExtractError("pdf: truncated")
    sink = TextSink(limits.max_chars)
    failed = not _pypdf_text(data, limits, sink)
    text = sink.getvalue()
    if not text.strip():
        sink = TextSink(limits.max_chars)
        _raw_text(data, limits, sink)
        text = sink.getvalue()
        if failed and not text.strip():
            raise ExtractError("pdf: unreadable")
    return drop_surrogates(text)


def _pypdf_text(data: bytes, limits: ExtractLimits, sink: TextSink) -> bool:
    """Write the text of the first ``max_pdf_pages`` pages as pypdf extracts it.

    Returns:
        False if pypdf failed (pages read before the failure stay in ``sink``).

    Raises:
        ExtractError: the PDF is encrypted with a password other than the empty one.
    """
    # Imported on the first PDF: pypdf and the cryptography it loads hold ~19 MiB a worker without PDFs
    # need not carry.
    import pypdf  # noqa: PLC0415

    # catch_warnings is process-global before Python 3.14; a stray pypdf warning elsewhere is harmless.
    with warnings.catch_warnings(), _pypdf_limits(pypdf, limits):
        warnings.simplefilter("ignore")
        locked = False
        try:
            reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
            locked = reader.is_encrypted and reader.decrypt("") == pypdf.PasswordType.NOT_DECRYPTED
            for index in range(0 if locked else min(len(reader.pages), limits.max_pdf_pages)):
                sink.write(reader.pages[index].extract_text())
                sink.sep("\n")
                if sink.full:
                    break
        except Exception:  # noqa: BLE001 - any pypdf failure (RecursionError too) means: try the raw walker
            return False
    if locked:
        raise ExtractError("pdf: encrypted")
    return True


def _pypdf_limits(pypdf: ModuleType, limits: ExtractLimits) -> AbstractContextManager[object]:
    """Return a context that caps pypdf's decompression output at ``max_member_size`` (pypdf >= 7)."""
    apply = getattr(pypdf, "apply_configuration", None)
    if apply is None:
        return contextlib.nullcontext()
    size = limits.max_member_size
    context: AbstractContextManager[object] = apply(
        zlib_maximum_output_length=size,
        lzw_maximum_output_length=size,
        run_length_maximum_output_length=size,
        jbig2_maximum_output_length=size,
        array_based_stream_maximum_output_length=size,
        jbig2dec_binary=None,  # never run an external decoder on untrusted input
    )
    return context


def _raw_text(data: bytes, limits: ExtractLimits, sink: TextSink) -> None:
    """Write the text operands of every content stream found by scanning for ``stream`` keywords."""
    for content in _content_streams(data, limits):
        _content_text(content, sink)
        sink.sep("\n")
        if sink.full:
            return


def _content_streams(data: bytes, limits: ExtractLimits) -> Iterator[bytes]:
    """Yield the decoded bytes of unfiltered and FlateDecode streams that can hold page content."""
    budget = limits.max_member_size * _TOTAL_INFLATE_FACTOR
    pos = 0
    while budget > 0 and (match := _STREAM.search(data, pos)):
        end = data.find(b"endstream", match.end())
        if end < 0:
            return
        pos = end + len(b"endstream")
        head = data[max(0, match.start() - _DICT_WINDOW) : match.start()]
        head = head[head.rfind(b"obj") + 1 :]
        filters = _FILTERS.findall(head)
        if _NOT_CONTENT.search(head) or any(f not in (b"FlateDecode", b"Fl") for f in filters):
            continue
        raw = data[match.end() : end]
        if filters:
            cap = min(limits.max_member_size, len(raw) * limits.max_ratio, budget)
            raw = _inflate(raw, cap)
        budget -= len(raw)
        yield raw


def _inflate(raw: bytes, cap: int) -> bytes:
    """Inflate zlib data to at most ``cap`` bytes; corrupt or truncated data yields what came out."""
    inflater = zlib.decompressobj()
    out: list[bytes] = []
    size = 0
    try:
        for start in range(0, len(raw), _INFLATE_CHUNK):
            if size >= cap:
                break
            piece = inflater.decompress(raw[start : start + _INFLATE_CHUNK], cap - size)
            out.append(piece)
            size += len(piece)
            if inflater.unconsumed_tail or inflater.eof:
                break
    except zlib.error:
        pass
    return b"".join(out)


def _content_text(content: bytes, sink: TextSink) -> None:
    """Write the strings shown by ``Tj``, ``TJ``, ``'`` and ``"``; line moves become separators."""
    pending: list[str] = []
    for match in _CONTENT_TOKEN.finditer(content):
        token = match.group()
        first = token[:1]
        if first == b"(":
            pending.append(_literal(token[1:-1]))
        elif first == b"<":
            pending.append(_hex(token[1:-1]))
        elif first in b"-.0123456789":
            if pending and float(token) < _WORD_GAP:
                pending.append(" ")
        else:
            _operator(token, pending, sink)
            if sink.full:
                return


def _operator(op: bytes, pending: list[str], sink: TextSink) -> None:
    """Apply one content-stream operator to the pending string operands."""
    if op in _SHOW:
        if op in (b"'", b'"'):
            sink.sep("\n")
        sink.write("".join(pending))
    elif op in (b"T*", b"ET"):
        sink.sep("\n")
    elif op in (b"Td", b"TD", b"Tm"):
        sink.sep(" ")
    pending.clear()


def _literal(body: bytes) -> str:
    """Decode the body of a ``(...)`` string: escapes, octal codes, then BOM / utf-8 / cp1252."""
    raw = _STRING_ESCAPE.sub(_unescape, body) if b"\\" in body else body
    return decode_text(raw)


def _unescape(match: re.Match[bytes]) -> bytes:
    """Return the bytes one backslash escape stands for."""
    escape = match.group(1)
    if escape[:1].isdigit():
        return bytes([int(escape, 8) & 0xFF])
    return _ESCAPES.get(escape, escape)


def _hex(body: bytes) -> str:
    """Decode the body of a ``<...>`` string (an odd final digit is padded with 0)."""
    digits = b"".join(body.split())
    if len(digits) % 2:
        digits += b"0"
    return decode_text(bytes.fromhex(digits.decode("ascii")))
