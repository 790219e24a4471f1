"""Office and PDF renderings for the benchmark corpus, built by hand (zip + minimal XML, raw PDF objects).

docx, xlsx and pptx are the smallest OOXML packages Office readers accept (content types, relationships,
one main part); odt and ods are ODF zips with ``mimetype`` stored first; the PDF has one Helvetica font,
WinAnsi text and a FlateDecode content stream per page.
"""

from __future__ import annotations

import io
import textwrap
import zipfile
import zlib
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from corpus_render import plain_lines, table_rows

if TYPE_CHECKING:
    from collections.abc import Callable

    from corpus_render import Doc

__all__ = ["OFFICE_RENDERERS"]

_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_OOXML = "http://schemas.openxmlformats.org/"
_CT = (
    f'{_XML}<Types xmlns="{_OOXML}package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>{}</Types>'
)
_REL = '<Relationship Id="{}" Type="' + _OOXML + 'officeDocument/2006/relationships/{}" Target="{}"/>'
_RELS = f'{_XML}<Relationships xmlns="{_OOXML}package/2006/relationships">{{}}</Relationships>'
_R_NS = f'xmlns:r="{_OOXML}officeDocument/2006/relationships"'
_MIME = "application/vnd.openxmlformats-officedocument."


def _zip(parts: dict[str, str], mimetype: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        if mimetype:
            archive.writestr(zipfile.ZipInfo("mimetype"), mimetype, compress_type=zipfile.ZIP_STORED)
        for name, text in parts.items():
            archive.writestr(name, text, compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def _x(value: object) -> str:
    return escape(str(value))


def _override(part: str, content_type: str) -> str:
    return f'<Override PartName="/{part}" ContentType="{_MIME}{content_type}"/>'


def _package(main: str, content_type: str, parts: dict[str, str], extra_types: str = "") -> bytes:
    """Zip an OOXML package whose main part is ``main``."""
    return _zip(
        {
            "[Content_Types].xml": _CT.format(_override(main, content_type) + extra_types),
            "_rels/.rels": _RELS.format(_REL.format("rId1", "officeDocument", main)),
            **parts,
        }
    )


# ---------------------------------------------------------------- docx
def _w_para(text: str, style: str = "") -> str:
    ppr = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
    runs = "<w:br/>".join(f'<w:t xml:space="preserve">{_x(t)}</w:t>' for t in str(text).split("\n"))
    return f"<w:p>{ppr}<w:r>{runs}</w:r></w:p>"


def _w_block(block: tuple) -> str:
    if block[0] == "p":
        return _w_para(block[1])
    if block[0] == "kv":
        return "".join(_w_para(f"{k}: {v}") for k, v in block[1])
    rows = [block[1], *block[2]]
    return (
        "<w:tbl>"
        + "".join("<w:tr>" + "".join(f"<w:tc>{_w_para(c)}</w:tc>" for c in r) + "</w:tr>" for r in rows)
        + "</w:tbl>"
    )


def _docx(doc: Doc) -> bytes:
    body = _w_para(doc.title, "Title") + "".join(_w_block(b) for b in doc.blocks)
    xml = (
        f'{_XML}<w:document xmlns:w="{_OOXML}wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>'
    )
    main = "word/document.xml"
    return _package(main, "wordprocessingml.document.main+xml", {main: xml})


# ---------------------------------------------------------------- xlsx
def _cell(ref: str, value: str, strings: list[str]) -> str:
    """Return a cell: short numbers as numbers, everything else as a shared string."""
    if value.replace(".", "", 1).isdigit() and len(value) < 10 and not value.startswith("0"):
        return f'<c r="{ref}"><v>{value}</v></c>'
    strings.append(value)
    return f'<c r="{ref}" t="s"><v>{len(strings) - 1}</v></c>'


def _xlsx(doc: Doc) -> bytes:
    strings: list[str] = []
    rows = []
    for r, row in enumerate(table_rows(doc), start=1):
        cells = "".join(
            _cell(f"{'A' if c >= 26 else ''}{chr(65 + c % 26)}{r}", v, strings) for c, v in enumerate(row)
        )
        rows.append(f'<row r="{r}">{cells}</row>')
    ns = f'xmlns="{_OOXML}spreadsheetml/2006/main"'
    sst = "".join(f'<si><t xml:space="preserve">{_x(s)}</t></si>' for s in strings)
    sheet = f'<sheet name="{_x(doc.title[:31])}" sheetId="1" r:id="rId1"/>'
    parts = {
        "xl/workbook.xml": f"<workbook {ns} {_R_NS}><sheets>{sheet}</sheets></workbook>",
        "xl/_rels/workbook.xml.rels": _RELS.format(
            _REL.format("rId1", "worksheet", "worksheets/sheet1.xml")
            + _REL.format("rId2", "sharedStrings", "sharedStrings.xml")
        ),
        "xl/worksheets/sheet1.xml": f"{_XML}<worksheet {ns}><sheetData>{''.join(rows)}</sheetData></worksheet>",
        "xl/sharedStrings.xml": f'<sst {ns} count="{len(strings)}" uniqueCount="{len(strings)}">{sst}</sst>',
    }
    types = _override("xl/worksheets/sheet1.xml", "spreadsheetml.worksheet+xml") + _override(
        "xl/sharedStrings.xml", "spreadsheetml.sharedStrings+xml"
    )
    return _package("xl/workbook.xml", "spreadsheetml.sheet.main+xml", parts, types)


# ---------------------------------------------------------------- pptx
_P_NS = f'xmlns:a="{_OOXML}drawingml/2006/main" xmlns:p="{_OOXML}presentationml/2006/main"'


def _slide(lines: list[str]) -> str:
    paras = "".join(f"<a:p><a:r><a:t>{_x(t.replace(chr(9), '  '))}</a:t></a:r></a:p>" for t in lines)
    body = f"<p:sp><p:txBody><a:bodyPr/>{paras}</p:txBody></p:sp>"
    return f"{_XML}<p:sld {_P_NS}><p:cSld><p:spTree>{body}</p:spTree></p:cSld></p:sld>"


def _pptx(doc: Doc) -> bytes:
    lines = [ln for ln in plain_lines(doc, wrap=False) if ln.strip() and set(ln) != {"="}]
    slides = [lines[i : i + 12] for i in range(0, len(lines), 12)] or [[doc.title]]
    numbers = range(1, len(slides) + 1)
    parts = {f"ppt/slides/slide{n}.xml": _slide(chunk) for n, chunk in zip(numbers, slides, strict=True)}
    ids = "".join(f'<p:sldId id="{255 + n}" r:id="rId{n}"/>' for n in numbers)
    parts["ppt/presentation.xml"] = (
        f"<p:presentation {_P_NS} {_R_NS}><p:sldIdLst>{ids}</p:sldIdLst></p:presentation>"
    )
    parts["ppt/_rels/presentation.xml.rels"] = _RELS.format(
        "".join(_REL.format(f"rId{n}", "slide", f"slides/slide{n}.xml") for n in numbers)
    )
    types = "".join(_override(f"ppt/slides/slide{n}.xml", "presentationml.slide+xml") for n in numbers)
    return _package("ppt/presentation.xml", "presentationml.presentation.main+xml", parts, types)


# ---------------------------------------------------------------- odt, ods
_ODF = "urn:oasis:names:tc:opendocument:xmlns:"
_ODF_NS = f'xmlns:office="{_ODF}office:1.0" xmlns:text="{_ODF}text:1.0" xmlns:table="{_ODF}table:1.0" office:version="1.2"'


def _text_p(text: str) -> str:
    return "<text:p>" + "<text:line-break/>".join(_x(t) for t in str(text).split("\n")) + "</text:p>"


def _table(name: str, rows: list[list[str]]) -> str:
    cells = ("".join(f"<table:table-cell>{_text_p(c)}</table:table-cell>" for c in r) for r in rows)
    body = "".join(f"<table:table-row>{c}</table:table-row>" for c in cells)
    return f'<table:table table:name="{_x(name[:31])}">{body}</table:table>'


def _odf_block(block: tuple) -> str:
    if block[0] == "p":
        return _text_p(block[1])
    if block[0] == "kv":
        return "".join(_text_p(f"{k}: {v}") for k, v in block[1])
    return _table("table", [block[1], *block[2]])


def _odf(doc: Doc, kind: str) -> bytes:
    if kind == "spreadsheet":
        content = _table(doc.title, [r or [""] for r in table_rows(doc)])
    else:
        content = _text_p(doc.title) + "".join(_odf_block(b) for b in doc.blocks)
    xml = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<office:document-content {_ODF_NS}><office:body>'
        f"<office:{kind}>{content}</office:{kind}></office:body></office:document-content>"
    )
    mime = f"application/vnd.oasis.opendocument.{kind}"
    entry = '<manifest:file-entry manifest:full-path="{}" manifest:media-type="{}"/>'
    manifest = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<manifest:manifest xmlns:manifest="{_ODF}manifest:1.0">'
        f"{entry.format('/', mime)}{entry.format('content.xml', 'text/xml')}</manifest:manifest>"
    )
    return _zip({"META-INF/manifest.xml": manifest, "content.xml": xml}, mimetype=mime)


# ---------------------------------------------------------------- pdf
_PDF_FALLBACK = str.maketrans("łŁśŚżŻźŹćĆńŃąĄęĘőŐűŰ", "lLsSzZzZcCnNaAeEoOuU")
_LINES_PER_PAGE = 60


def _pdf_string(text: str) -> str:
    raw = text.translate(_PDF_FALLBACK).encode("cp1252", "replace").decode("latin-1")
    return "(" + raw.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def _page_objects(index: int, lines: list[str]) -> list[bytes]:
    """Return a page object and its FlateDecode content stream (objects ``4 + 2i`` and ``5 + 2i``)."""
    ops = ["BT", "/F1 10 Tf", "12 TL", "50 790 Td", *(f"{_pdf_string(t)} Tj T*" for t in lines), "ET"]
    stream = zlib.compress("\n".join(ops).encode("latin-1"))
    page = (
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> "
        f"/Contents {5 + 2 * index} 0 R >>"
    )
    content = f"<< /Length {len(stream)} /Filter /FlateDecode >>\nstream\n".encode() + stream + b"\nendstream"
    return [page.encode(), content]


def _pdf(doc: Doc) -> bytes:
    lines = [
        w
        for line in plain_lines(doc, wrap=True)
        for w in (textwrap.wrap(line.replace("\t", "    "), 95) or [""])
    ]
    pages = [lines[i : i + _LINES_PER_PAGE] for i in range(0, len(lines), _LINES_PER_PAGE)] or [[""]]
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for i, page in enumerate(pages):
        objects += _page_objects(i, page)
    out, offsets = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


OFFICE_RENDERERS: dict[str, Callable[[Doc], bytes]] = {
    "docx": _docx,
    "xlsx": _xlsx,
    "pptx": _pptx,
    "odt": lambda d: _odf(d, "text"),
    "ods": lambda d: _odf(d, "spreadsheet"),
    "pdf": _pdf,
}
