"""Renderers for the benchmark corpus: one abstract document in, the bytes of one file format out.

A :class:`Doc` is a title and a list of blocks (paragraphs, label/value fields, tables) plus optional
mail, vCard or calendar details. This module writes the text formats; ``corpus_office`` writes docx,
xlsx, pptx, odt, ods and pdf by hand, so the corpus needs no document library.
"""

from __future__ import annotations

import base64
import html
import io
import json
import quopri
import textwrap
import zlib
from dataclasses import dataclass, field

__all__ = ["FORMATS", "TEXT_RENDERERS", "Doc", "plain_lines", "table_rows"]

FORMATS = (
    "txt", "csv", "json", "html", "md", "log", "eml", "vcf", "ics",
    "docx", "xlsx", "pptx", "odt", "ods", "pdf",
)  # fmt: skip


@dataclass
class Doc:
    """An abstract document: blocks are ``("p", text)``, ``("kv", pairs)`` or ``("table", header, rows)``."""

    title: str
    blocks: list[tuple] = field(default_factory=list)
    sender: tuple[str, str] = ("", "")  # display name, address (eml)
    recipients: list[tuple[str, str]] = field(default_factory=list)
    date: str = "Mon, 15 Jan 2024 10:23:45 +0100"
    cards: list[list[tuple[str, str]]] = field(default_factory=list)  # vCard property lines
    events: list[list[tuple[str, str]]] = field(default_factory=list)  # VEVENT property lines
    variant: int = 0  # picks among equivalent renderings (wrapping, encodings, separators)
    tag: str = ""  # what a needle document hides, for the benchmark's breakdown


# ---------------------------------------------------------------- text renderings
def _kv_lines(pairs: list[tuple[str, str]]) -> list[str]:
    lines = []
    for label, value in pairs:
        first, *rest = str(value).split("\n")
        lines.append(f"{label}: {first}")
        lines.extend(" " * (len(label) + 2) + r for r in rest)
    return lines


def plain_lines(doc: Doc, wrap: bool) -> list[str]:
    lines = [doc.title, "=" * min(len(doc.title), 60), ""]
    for block in doc.blocks:
        if block[0] == "p" and "\n" in block[1]:
            lines.extend(block[1].split("\n"))
        elif block[0] == "p":
            lines.extend(textwrap.wrap(block[1], 78) if wrap else [block[1]])
        elif block[0] == "kv":
            lines.extend(_kv_lines(block[1]))
        else:
            _, header, rows = block
            lines.append("\t".join(header))
            lines.extend("\t".join(str(c).replace("\n", ", ") for c in row) for row in rows)
        lines.append("")
    return lines


def _txt(doc: Doc) -> bytes:
    return "\n".join(plain_lines(doc, wrap=doc.variant % 2 == 0)).encode()


def _md(doc: Doc) -> bytes:
    out = [f"# {doc.title}", ""]
    for block in doc.blocks:
        if block[0] == "p":
            out.append(block[1].replace("\n", "  \n"))
        elif block[0] == "kv":
            out.extend(f"- **{k}:** {str(v).replace(chr(10), ', ')}" for k, v in block[1])
        else:
            _, header, rows = block
            out.append("| " + " | ".join(header) + " |")
            out.append("|" + "---|" * len(header))
            out.extend("| " + " | ".join(str(c).replace("\n", ", ") for c in r) + " |" for r in rows)
        out.append("")
    return "\n".join(out).encode()


def _html(doc: Doc) -> bytes:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        "<html><head><meta charset='utf-8'>",
        f"<title>{e(doc.title)}</title></head><body>",
    ]
    out.append(f"<h1>{e(doc.title)}</h1>")
    for block in doc.blocks:
        if block[0] == "p":
            out.append(f"<p>{e(block[1]).replace(chr(10), '<br>')}</p>")
        elif block[0] == "kv":
            out.append("<dl>")
            out.extend(f"<dt>{e(k)}</dt><dd>{e(str(v)).replace(chr(10), '<br>')}</dd>" for k, v in block[1])
            out.append("</dl>")
        else:
            _, header, rows = block
            out.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
            out.extend("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows)
            out.append("</table>")
    out.append("<footer><p>&copy; 2024 &middot; <a href='/privacy'>Privacy</a></p></footer></body></html>")
    return "\n".join(out).encode()


def table_rows(doc: Doc) -> list[list[str]]:
    """All blocks as rows: tables as they are, fields as label/value pairs, paragraphs as one cell."""
    rows: list[list[str]] = []
    for block in doc.blocks:
        if block[0] == "table":
            rows.append(list(block[1]))
            rows.extend([str(c) for c in r] for r in block[2])
        elif block[0] == "kv":
            rows.extend([k, str(v)] for k, v in block[1])
        else:
            rows.append([block[1]])
        rows.append([])
    return rows


def _csv(doc: Doc) -> bytes:
    import csv

    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";" if doc.variant % 3 == 1 else ",", lineterminator="\n")
    for row in table_rows(doc):
        writer.writerow([c.replace("\n", ", ") if doc.variant % 2 else c for c in row])
    return buf.getvalue().encode("utf-8-sig" if doc.variant % 4 == 3 else "utf-8")


def _json(doc: Doc) -> bytes:
    obj: dict = {"title": doc.title}
    for block in doc.blocks:
        if block[0] == "p":
            obj.setdefault("notes", []).append(block[1])
        elif block[0] == "kv":
            obj.setdefault("fields", {}).update(dict(block[1]))
        else:
            _, header, rows = block
            obj.setdefault("records", []).extend(dict(zip(header, r, strict=False)) for r in rows)
    return json.dumps(obj, ensure_ascii=doc.variant % 2 == 0, indent=2).encode()


def _log(doc: Doc) -> bytes:
    levels = ("INFO", "DEBUG", "INFO", "WARN", "INFO")
    out, n = [], 0
    for line in plain_lines(doc, wrap=False):
        if not line.strip() or set(line) == {"="}:
            continue
        n += 1
        ts = f"2024-03-{1 + n // 500 % 28:02d}T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}.{n * 37 % 1000:03d}Z"
        out.append(f"{ts} {levels[n % 5]:5} [worker-{n % 7}] app.service - {line.replace(chr(9), ' | ')}")
    return "\n".join(out).encode()


# ---------------------------------------------------------------- mail, vCard, iCalendar
def _addr(name: str, addr: str) -> str:
    return f'"{name}" <{addr}>' if name else addr


def _eml(doc: Doc) -> bytes:
    body = "\n".join(plain_lines(doc, wrap=True)[3:])
    cte = ("quoted-printable", "base64", "8bit")[doc.variant % 3]
    if cte == "quoted-printable":
        payload = quopri.encodestring(body.encode()).decode()
    elif cte == "base64":
        payload = base64.encodebytes(body.encode()).decode()
    else:
        payload = body
    to = ", ".join(_addr(n, a) for n, a in doc.recipients) or "undisclosed-recipients:;"
    headers = [
        f"From: {_addr(*doc.sender)}",
        f"To: {to}",
        f"Subject: {doc.title}",
        f"Date: {doc.date}",
        f"Message-ID: <{zlib.crc32(doc.title.encode())}.{doc.variant}@mail.internal>",
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="utf-8"',
        f"Content-Transfer-Encoding: {cte}",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n" + payload.replace("\n", "\r\n")).encode()


def _fold(line: str) -> str:
    """Fold a content line at 75 octets (RFC 5545/6350): CRLF and one space before each continuation."""
    raw, parts = line.encode(), list[bytes]()
    while len(raw) > 75:
        cut = 75 if not parts else 74
        while cut and (raw[cut] & 0xC0) == 0x80:  # never split a UTF-8 sequence
            cut -= 1
        parts.append(raw[:cut])
        raw = raw[cut:]
    parts.append(raw)
    return b"\r\n ".join(parts).decode()


def _vcf(doc: Doc) -> bytes:
    out = []
    for card in doc.cards:
        out += ["BEGIN:VCARD", "VERSION:3.0"]
        out += [_fold(f"{k}:{v}") for k, v in card]
        out.append("END:VCARD")
    return ("\r\n".join(out) + "\r\n").encode()


def _ics(doc: Doc) -> bytes:
    out = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Corpus//Calendar 1.0//EN", "CALSCALE:GREGORIAN"]
    for event in doc.events:
        out.append("BEGIN:VEVENT")
        out += [_fold(f"{k}:{v}") for k, v in event]
        out.append("END:VEVENT")
    out.append("END:VCALENDAR")
    return ("\r\n".join(out) + "\r\n").encode()


TEXT_RENDERERS = {
    "txt": _txt, "md": _md, "html": _html, "csv": _csv, "json": _json, "log": _log, "eml": _eml,
    "vcf": _vcf, "ics": _ics,
}  # fmt: skip
