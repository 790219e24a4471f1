"""Plain text, scripts, vCard and iCalendar: one decode, plus line unfolding for the card formats."""

from __future__ import annotations

import quopri
import re
from typing import TYPE_CHECKING

from agent.classify.extract.base import TextSink, decode_text, drop_surrogates

if TYPE_CHECKING:
    from agent.classify.extract.base import ExtractLimits

__all__ = ["PLAIN_FORMATS", "cards_to_text", "extract_cards", "extract_plain"]

PLAIN_FORMATS = frozenset(
    {"txt", "csv", "json", "md", "log"}
    | {"shell", "powershell", "python", "js", "vbs", "batch", "perl", "ruby", "php"}
)

# A content line is NAME[;PARAM...]:VALUE; a param value may be quoted and then contain ':' or ';'.
_CONTENT_LINE = re.compile(r'((?:[^:"]|"[^"]*")*):(.*)', re.DOTALL)
_FOLD = re.compile(r"\r?\n[ \t]")
_ESCAPE = re.compile(r"\\([nN,;:\\])")
_UNESCAPED = {"n": "\n", "N": "\n"}
_BINARY_ENCODINGS = frozenset({"B", "BASE64"})
_QP_PARAMS = frozenset({"ENCODING", "CHARSET", "QUOTED-PRINTABLE"})


def extract_plain(data: bytes, limits: ExtractLimits) -> str:
    """Decode a plain text or script file, reading no more bytes than ``max_chars`` can need.

    Args:
        data: the file's bytes.
        limits: only ``max_chars`` applies.

    Returns:
        The decoded text, at most ``limits.max_chars`` characters.
    """
    max_chars = max(limits.max_chars, 0)
    # Four bytes per character is the most any supported encoding spends, plus a BOM.
    return decode_text(data[: max_chars * 4 + 4])[:max_chars]


def extract_cards(data: bytes, limits: ExtractLimits) -> str:
    """Return a vCard or iCalendar file as unfolded ``NAME;PARAMS:value`` lines.

    Args:
        data: the file's bytes.
        limits: only ``max_chars`` applies.

    Returns:
        One line per property, values decoded (quoted-printable, backslash escapes).
    """
    sink = TextSink(limits.max_chars)
    cards_to_text(decode_text(data), sink)
    return drop_surrogates(sink.getvalue())


def cards_to_text(text: str, sink: TextSink) -> None:
    """Write the properties of vCard / iCalendar text to ``sink``, one ``NAME:value`` line each."""
    lines = _FOLD.sub("", text).splitlines()
    index = 0
    while index < len(lines) and not sink.full:
        line = lines[index]
        index += 1
        match = _CONTENT_LINE.fullmatch(line)
        if match is None:
            sink.write(line.strip())
            sink.sep("\n")
            continue
        name_params, value = match.groups()
        params = _split_params(name_params)
        # vCard 2.1 also allows the bare tokens (``PHOTO;JPEG;BASE64:``, ``N;QUOTED-PRINTABLE:``).
        encodings = {_param(params, "ENCODING").upper(), *(p.strip().upper() for p in params[1:])}
        if encodings & _BINARY_ENCODINGS or value.startswith("data:"):
            continue  # an embedded photo or attachment: no text in it
        if "QUOTED-PRINTABLE" in encodings:
            while value.endswith("=") and index < len(lines):  # soft line breaks
                value = value[:-1] + lines[index]
                index += 1
            value = _decode_qp(value, _param(params, "CHARSET"))
            params = [p for p in params if _param_name(p) not in _QP_PARAMS]
        sink.write(f"{';'.join(params)}:{_unescape(value)}")
        sink.sep("\n")


def _split_params(name_params: str) -> list[str]:
    """Split ``NAME;P1=a;P2="x;y"`` at the semicolons outside double quotes."""
    if '"' not in name_params:
        return name_params.split(";")
    params: list[str] = []
    start = 0
    quoted = False
    for pos, char in enumerate(name_params):
        if char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            params.append(name_params[start:pos])
            start = pos + 1
    params.append(name_params[start:])
    return params


def _param_name(param: str) -> str:
    """Return the upper-cased name of a ``NAME=value`` parameter (or the bare vCard 2.1 token)."""
    return param.split("=", 1)[0].strip().upper()


def _param(params: list[str], name: str) -> str:
    """Return the value of parameter ``name`` (case-insensitive) or ``""``."""
    for param in params[1:]:
        key, sep, value = param.partition("=")
        if sep and key.strip().upper() == name:
            return value.strip().strip('"')
    return ""


def _decode_qp(value: str, charset: str) -> str:
    """Decode a quoted-printable value in ``charset`` (utf-8 and cp1252 guessed when unknown)."""
    raw = quopri.decodestring(value.encode("utf-8"))
    if charset:
        try:
            return raw.decode(charset)
        except (LookupError, ValueError):
            pass
    return decode_text(raw)


def _unescape(value: str) -> str:
    r"""Undo the backslash escapes of vCard 3/4 and iCalendar (``\n``, ``\,``, ``\;``, ``\\``)."""
    if "\\" not in value:
        return value
    return _ESCAPE.sub(lambda m: _UNESCAPED.get(m.group(1), m.group(1)), value)
