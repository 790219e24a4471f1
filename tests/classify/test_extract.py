"""Text extractors: every format yields its planted text, limits hold, and failures are ExtractError only."""

from __future__ import annotations

import base64
import io
import logging
import time
import zipfile
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf import PdfWriter

from agent.classify.extract import TEXT_FORMATS, ExtractLimits, extract_text
from agent.classify.extract import plain as plain_module
from agent.errors import ExtractError

EMAIL = "jane.doe@example.com"
IBAN = "DE89 3704 0044 0532 0130 00"
SMALL = ExtractLimits(max_chars=200)

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
S_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
A_NS = "http://schemas.openxmlformats.org/drawingml/2006/main"
P_NS = "http://schemas.openxmlformats.org/presentationml/2006/main"
ODF_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0"'
)
LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + "".join(
        f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n' for i in range(1, 10)
    )
    + "]>\n"
)


# ---------------------------------------------------------------- sample builders


def zip_of(members: dict[str, bytes | str], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data, compress_type=zipfile.ZIP_STORED if name == "mimetype" else compression)
    return buf.getvalue()


def docx_document(body: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:document xmlns:w="{W_NS}"><w:body>{body}</w:body></w:document>'


def para(*runs: str) -> str:
    return "<w:p><w:pPr><w:tabs><w:tab w:val='left' w:pos='720'/></w:tabs></w:pPr>" + "".join(runs) + "</w:p>"


def run(text: str) -> str:
    return f'<w:r><w:t xml:space="preserve">{text}</w:t></w:r>'


def docx(body: str | None = None) -> bytes:
    if body is None:
        body = (
            para(run("Contact: "), run(EMAIL))
            + para(run("IBAN:"), "<w:r><w:tab/></w:r>", run(IBAN))
            + "<w:tbl><w:tr><w:tc>"
            + para(run("Name:"))
            + "</w:tc><w:tc>"
            + para(run("Jane"))
            + "</w:tc></w:tr></w:tbl>"
        )
    header = f'<w:hdr xmlns:w="{W_NS}">{para(run("Header text"))}</w:hdr>'
    return zip_of(
        {
            "[Content_Types].xml": '<?xml version="1.0"?><Types/>',
            "word/document.xml": docx_document(body),
            "word/header1.xml": header,
        }
    )


def xlsx() -> bytes:
    shared = (
        f'<sst xmlns="{S_NS}" count="3"><si><t>Name:</t></si><si><r><t>Ja</t></r><r><t>ne</t></r>'
        f"<rPh><t>PHONETIC</t></rPh></si><si><t>{EMAIL}</t></si></sst>"
    )
    sheet = (
        f'<worksheet xmlns="{S_NS}"><sheetData>'
        '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>'
        f'<row r="2"><c r="A2" t="inlineStr"><is><t>IBAN</t></is></c><c r="B2" t="str"><f>X</f><v>{IBAN}</v></c></row>'
        '<row r="3"><c r="A3" t="s"><v>2</v></c><c r="B3"><v>4915112345678</v></c><c t="e"><v>#REF!</v></c></row>'
        "</sheetData></worksheet>"
    )
    return zip_of(
        {
            "[Content_Types].xml": "<Types/>",
            "xl/workbook.xml": f'<workbook xmlns="{S_NS}"/>',
            "xl/sharedStrings.xml": shared,
            "xl/worksheets/sheet1.xml": sheet,
        }
    )


def slide(text: str) -> str:
    return (
        f'<p:sld xmlns:p="{P_NS}" xmlns:a="{A_NS}"><p:cSld><p:spTree><p:sp><p:txBody>'
        f"<a:p><a:r><a:t>{text}</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:sld>"
    )


def pptx() -> bytes:
    return zip_of(
        {
            "[Content_Types].xml": "<Types/>",
            "ppt/presentation.xml": f'<p:presentation xmlns:p="{P_NS}"/>',
            "ppt/slides/slide10.xml": slide("Tenth slide"),
            "ppt/slides/slide2.xml": slide(f"IBAN {IBAN}"),
            "ppt/slides/slide1.xml": slide(f"Mail {EMAIL}"),
        }
    )


def odf(kind: str, body: str) -> bytes:
    content = f'<?xml version="1.0"?><office:document-content {ODF_NS}><office:body>{body}</office:body></office:document-content>'
    return zip_of(
        {
            "mimetype": f"application/vnd.oasis.opendocument.{kind}",
            "content.xml": content,
            "META-INF/manifest.xml": "<manifest/>",
        }
    )


def odt() -> bytes:
    return odf(
        "text",
        f"<office:text><text:p>Contact:<text:tab/>{EMAIL}</text:p><text:h>IBAN {IBAN}</text:h></office:text>",
    )


def ods() -> bytes:
    cells = f"<table:table-row><table:table-cell><text:p>Name:</text:p></table:table-cell><table:table-cell><text:p>{EMAIL}</text:p></table:table-cell></table:table-row>"
    cells += f"<table:table-row><table:table-cell><text:p>IBAN</text:p><text:p>{IBAN}</text:p></table:table-cell></table:table-row>"
    return odf("spreadsheet", f"<office:spreadsheet><table:table>{cells}</table:table></office:spreadsheet>")


def odp() -> bytes:
    return odf(
        "presentation",
        f"<office:presentation><draw:page><draw:frame><draw:text-box><text:p>{EMAIL} {IBAN}</text:p></draw:text-box></draw:frame></draw:page></office:presentation>",
    )


def pdf_of(objects: list[bytes], *, xref: bool = True) -> bytes:
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    if xref:
        start = len(out)
        out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
        out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
        out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n" % (len(objects) + 1, start)
    return bytes(out + b"%%EOF\n")


def stream_obj(content: bytes, *, flate: bool = True) -> bytes:
    data = zlib.compress(content) if flate else content
    return b"<< /Length %d%s >>\nstream\n%s\nendstream" % (
        len(data),
        b" /Filter /FlateDecode" if flate else b"",
        data,
    )


def pdf(pages: list[bytes] | None = None) -> bytes:
    """A PDF with one Helvetica page per content stream, every stream FlateDecode."""
    if pages is None:
        pages = [
            b"BT /F1 12 Tf 72 720 Td (Contact: "
            + EMAIL.encode()
            + b") Tj 0 -14 Td [(IBAN ) -50 ("
            + IBAN.encode()
            + b")] TJ ET"
        ]
    count = len(pages)
    kids = b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(count))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, count),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, content in enumerate(pages):
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>"
            % (5 + 2 * i)
        )
        objects.append(stream_obj(content))
    return pdf_of(objects)


def pdf_without_xref(content: bytes) -> bytes:
    """Only a content stream: no catalog, no pages, no xref; pypdf finds no text in it."""
    return pdf_of([stream_obj(content)], xref=False)


def eml(
    *, attachment: bytes | None = None, attachment_name: str = "cv.docx", body: str | None = None
) -> bytes:
    html = f"<html><body><p>Call me: <b>+49 30 1234567</b> &amp; write {EMAIL}</p><script>var leak='SCRIPT'</script></body></html>"
    subject = base64.b64encode("Gehaltsabrechnung März".encode()).decode()
    attachment = docx() if attachment is None else attachment
    lines = [
        "From: Jane Doe <sender@example.com>",
        "To: Bob <bob@example.net>",
        "Cc: =?utf-8?q?J=C3=BCrgen?= <juergen@example.de>",
        "Reply-To: reply@example.com",
        f"Subject: =?utf-8?b?{subject}?=",
        "X-Secret: not-a-wanted-header",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="outer"',
        "",
        "--outer",
        'Content-Type: multipart/alternative; boundary="alt"',
        "",
        "--alt",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: quoted-printable",
        "",
        body if body is not None else f"Gr=C3=BC=C3=9Fe, IBAN: {IBAN} and a soft=",
        " break here",
        "--alt",
        "Content-Type: text/html; charset=utf-8",
        "Content-Transfer-Encoding: base64",
        "",
        base64.encodebytes(html.encode()).decode().strip(),
        "--alt--",
        "--outer",
        "Content-Type: message/rfc822",
        "",
        "From: Max Muster <max.inner@example.org>",
        "Subject: inner message",
        "",
        "Inner body text",
        "--outer",
        f'Content-Type: application/octet-stream; name="{attachment_name}"',
        f'Content-Disposition: attachment; filename="{attachment_name}"',
        "Content-Transfer-Encoding: base64",
        "",
        base64.encodebytes(attachment).decode().strip(),
        "--outer--",
        "",
    ]
    return "\r\n".join(lines).encode()


VCF = (
    b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Jane Doe\r\nN:Doe;Jane;;;\r\nTEL;TYPE=cell:+49 151 1234\r\n 5678\r\n"
    b"EMAIL;TYPE=work:jane.d\r\n\toe@example.com\r\nADR:;;Street 1;City;;12345;DE\r\nBDAY:1980-01-02\r\n"
    b"NOTE:first line\\nsecond\\, with comma\r\nPHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQSkZJRgABAQ\r\n AAAQABAAD\r\nEND:VCARD\r\n"
)
VCF21 = (
    b"BEGIN:VCARD\r\nVERSION:2.1\r\nN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:M=C3=BCller;J=C3=BCrgen\r\n"
    b"ADR;HOME;ENCODING=QUOTED-PRINTABLE:;;Hauptstra=C3=9Fe 1=\r\n;Berlin;;10115;DE\r\n"
    b"LABEL;QUOTED-PRINTABLE;CHARSET=ISO-8859-1:K=F6ln\r\nPHOTO;JPEG;BASE64:/9j/4AAQSkZJRg\r\n AAQABAAD\r\n\r\n"
    b"END:VCARD\r\n"
)
ICS = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nSUMMARY:Review with Jane\r\n"
    b'ATTENDEE;CN="Doe: Jane";ROLE=REQ-PARTICIPANT:mailto:jane.doe@exam\r\n ple.com\r\n'
    b"DESCRIPTION:Account\\, please:\\nIBAN DE89 3704 0044 0532 0130 00\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
RTF = (
    b"{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0 Arial;}}{\\colortbl;\\red0\\green0\\blue0;}"
    b"{\\*\\generator Hidden Generator;}{\\info{\\author Hidden Author}}"
    b"\\pard Contact: \\b " + EMAIL.encode() + b"\\b0\\par IBAN:\\tab " + IBAN.encode() + b"\\par "
    b"M\\'fcller \\u8364? Euro{\\pict\\pngblip 89504e47}\\bin4 \x00\x01{}\\par}"
)

SAMPLES: dict[str, bytes] = {
    "txt": f"Contact {EMAIL}\nIBAN {IBAN}\n".encode(),
    "csv": f"name,email,iban\nJane,{EMAIL},{IBAN}\n".encode(),
    "json": f'{{"email": "{EMAIL}", "iban": "{IBAN}"}}'.encode(),
    "md": f"# Contact\n\n* {EMAIL}\n* {IBAN}\n".encode(),
    "log": f"2024-01-01 login {EMAIL} iban={IBAN}\n".encode(),
    "shell": f"#!/bin/sh\n# {EMAIL}\necho '{IBAN}'\n".encode(),
    "powershell": f"Write-Host '{EMAIL}' '{IBAN}'\n".encode(),
    "python": f"EMAIL = '{EMAIL}'\nIBAN = '{IBAN}'\n".encode(),
    "js": f"const email = '{EMAIL}'; const iban = '{IBAN}';\n".encode(),
    "vbs": f'MsgBox "{EMAIL} {IBAN}"\n'.encode(),
    "batch": f"@echo off\necho {EMAIL} {IBAN}\n".encode(),
    "perl": f"print '{EMAIL} {IBAN}';\n".encode(),
    "ruby": f"puts '{EMAIL} {IBAN}'\n".encode(),
    "php": f"<?php echo '{EMAIL} {IBAN}'; ?>\n".encode(),
    "html": f"<html><body><p>{EMAIL}</p><p>{IBAN}</p></body></html>".encode(),
    "xml": f'<?xml version="1.0"?><contact email="{EMAIL}"><iban>{IBAN}</iban></contact>'.encode(),
    "eml": eml(),
    "vcf": VCF.replace(b"+49 151 1234\r\n 5678", IBAN.encode()),
    "ics": ICS,
    "rtf": RTF,
    "pdf": pdf(),
    "docx": docx(),
    "xlsx": xlsx(),
    "pptx": pptx(),
    "odt": odt(),
    "ods": ods(),
    "odp": odp(),
    "ooxml": docx(),
}


# ---------------------------------------------------------------- every format


def test_samples_cover_every_format() -> None:
    """The sample set has one document for every format extract_text handles."""
    assert set(SAMPLES) == set(TEXT_FORMATS)


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_format_yields_planted_text(fmt: str) -> None:
    """Every format yields the e-mail address and IBAN planted in its sample."""
    text = extract_text(SAMPLES[fmt], fmt)
    assert EMAIL in text
    assert IBAN in text


def test_unknown_format_gives_empty_text() -> None:
    """A format with no text (binary, image, archive) gives an empty string."""
    assert extract_text(b"\x7fELF\x02\x01\x01" + bytes(100), "elf") == ""
    assert extract_text(b"\x89PNG\r\n\x1a\n", "png") == ""


# ---------------------------------------------------------------- plain text and decoding


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be"])
def test_bom_decides_encoding(encoding: str) -> None:
    """A utf-8 or utf-16 (LE/BE) byte-order mark decides the encoding and is not part of the text."""
    data = "Müller €".encode(encoding)
    if encoding in ("utf-16-le", "utf-16-be"):
        data = ("\ufeff" + "Müller €").encode(encoding)
    assert extract_text(data, "txt") == "Müller €"


def test_cp1252_fallback_never_raises() -> None:
    """Bytes that are not utf-8 decode as cp1252, with its undefined bytes as latin-1."""
    assert extract_text(b"Gr\xfc\xdfe \x80 \x81", "txt") == "Grüße € \x81"


def test_multibyte_char_cut_at_end_stays_utf8() -> None:
    """A utf-8 sequence cut at the very end drops only that character, not the utf-8 reading."""
    assert extract_text("Grüße €".encode()[:-1], "csv") == "Grüße "


def test_max_chars_truncates_plain_text() -> None:
    """Plain text longer than max_chars is cut to exactly max_chars characters."""
    assert extract_text(b"x" * 10_000, "log", ExtractLimits(max_chars=100)) == "x" * 100


# ---------------------------------------------------------------- html and xml


def test_html_drops_scripts_and_styles_and_resolves_entities() -> None:
    """HTML loses tags, scripts and styles; entities resolve; cells become tabs."""
    page = b"<style>p{color:red}</style><script>var s='SECRET'</script><p>A &amp; B &#8364;</p><table><tr><td>Name:</td><td>Jane</td></tr></table>"
    text = extract_text(page, "html")
    assert "SECRET" not in text
    assert "color" not in text
    assert "A & B €" in text
    assert "Name:\tJane" in text


def test_xml_billion_laughs_refused_quickly() -> None:
    """An XML file declaring entities is refused before any expansion."""
    with pytest.raises(ExtractError, match="entity"):  # refused at the declaration: nothing expands
        extract_text((LAUGHS + "<lolz>&lol9;</lolz>").encode(), "xml")


def test_xml_external_entity_refused() -> None:
    """An external entity (XXE) is refused, never fetched."""
    doc = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY ext SYSTEM "file:///etc/passwd">]><x>&ext;</x>'
    with pytest.raises(ExtractError, match="entity"):
        extract_text(doc, "xml")


def test_malformed_xml_raises() -> None:
    """Malformed XML raises ExtractError."""
    with pytest.raises(ExtractError, match="xml"):
        extract_text(b"<a><b></a>", "xml")


# ---------------------------------------------------------------- office


def test_docx_keeps_labels_with_tabs_and_newlines() -> None:
    """A docx keeps tabs and table cells as tabs and paragraphs as newlines, headers included."""
    text = extract_text(docx(), "docx")
    assert f"Contact: {EMAIL}\nIBAN:\t{IBAN}\n" in text
    assert "Name:\tJane" in text
    assert "Header text" in text


def test_docx_truncated_raises() -> None:
    """A docx cut short is a corrupt zip."""
    data = docx()
    with pytest.raises(ExtractError, match="corrupt zip"):
        extract_text(data[: len(data) // 2], "docx")


def test_docx_billion_laughs_refused_quickly() -> None:
    """A docx whose document.xml declares entities is refused within a second."""
    data = zip_of(
        {
            "word/document.xml": LAUGHS
            + f'<w:document xmlns:w="{W_NS}"><w:body><w:p><w:r><w:t>&lol9;</w:t></w:r></w:p></w:body></w:document>'
        }
    )
    with pytest.raises(ExtractError, match="entity declarations refused"):  # nothing expands
        extract_text(data, "docx")


def test_zip_member_ratio_bomb_refused() -> None:
    """A member that inflates beyond max_ratio is refused after reading a bounded amount."""
    body = b"<w:p><w:r><w:t>" + EMAIL.encode() + b"</w:t></w:r></w:p>" + b" " * (64 << 20)
    data = zip_of({"word/document.xml": f'<w:document xmlns:w="{W_NS}"><w:body>'.encode() + body})
    start = time.process_time()
    with pytest.raises(ExtractError, match="ratio"):
        extract_text(data, "docx")
    assert time.process_time() - start < 60  # a hang guard (CPU time), not a speed claim


def test_zip_member_size_limit_truncates() -> None:
    """A member larger than max_member_size is read up to the limit; text before it survives."""
    filler = para(run("filler " * 50)) * 400
    data = docx(para(run(EMAIL)) + filler + para(run("AFTER-LIMIT")))
    text = extract_text(data, "docx", ExtractLimits(max_member_size=16 * 1024))
    assert EMAIL in text
    assert "AFTER-LIMIT" not in text


def test_zip_max_members_bounds_lookup() -> None:
    """Members beyond max_members are not looked at."""
    members: dict[str, bytes | str] = {f"pad/{i}.bin": b"" for i in range(20)}
    data = zip_of({**members, "word/document.xml": docx_document(para(run(EMAIL)))})
    assert EMAIL in extract_text(data, "docx")
    with pytest.raises(ExtractError, match="no document parts"):
        extract_text(data, "docx", ExtractLimits(max_members=10))


def test_zip_unusual_compression_refused() -> None:
    """A member compressed with something Office never writes (bzip2) is refused, not inflated."""
    data = zip_of({"word/document.xml": docx_document(para(run(EMAIL)))}, compression=zipfile.ZIP_BZIP2)
    with pytest.raises(ExtractError, match="compression"):
        extract_text(data, "docx")


def test_docx_max_chars_truncates() -> None:
    """A docx with more text than max_chars yields exactly max_chars characters."""
    data = docx(para(run("y" * 5000)))
    assert extract_text(data, "docx", ExtractLimits(max_chars=300)) == "y" * 300


def test_xlsx_rows_and_cells() -> None:
    """A sheet reads row by row with tab-separated cells, shared and inline strings resolved."""
    text = extract_text(xlsx(), "xlsx")
    assert f"Name:\tJane\nIBAN\t{IBAN}\n{EMAIL}\t4915112345678" in text
    assert "PHONETIC" not in text
    assert "#REF!" not in text


def test_pptx_slides_in_numeric_order() -> None:
    """Slides come in slide-number order (2 before 10)."""
    text = extract_text(pptx(), "pptx")
    assert text.index(EMAIL) < text.index(IBAN) < text.index("Tenth slide")


def test_ods_cells_as_tabs() -> None:
    """ODF spreadsheet cells are separated by tabs so labels stay next to values."""
    assert f"Name:\t{EMAIL}" in extract_text(ods(), "ods")


def test_ooxml_flavour_from_member_names() -> None:
    """An 'ooxml' zip (sniffed without member names) is read by the flavour its members show."""
    assert EMAIL in extract_text(xlsx(), "ooxml")
    assert EMAIL in extract_text(pptx(), "ooxml")


def test_plain_zip_as_office_raises() -> None:
    """A zip without document parts is an ExtractError, not empty text."""
    with pytest.raises(ExtractError, match="no document parts"):
        extract_text(zip_of({"a.txt": "hello"}), "docx")


# ---------------------------------------------------------------- pdf


def test_pdf_text_via_pypdf_keeps_lines() -> None:
    """pypdf reads the Flate content stream; lines stay apart."""
    text = extract_text(pdf(), "pdf")
    assert f"Contact: {EMAIL}" in text
    assert IBAN in text


def test_pdf_fallback_reads_raw_streams() -> None:
    """When pypdf finds no pages the raw walker reads Tj / TJ operands of Flate streams."""
    content = (
        b"BT (Contact: "
        + EMAIL.encode()
        + b") Tj T* [(IB) 20 (AN) -250 <4445> (89 3704 0044 0532 0130 00)] TJ ET"
    )
    text = extract_text(pdf_without_xref(content), "pdf")
    assert f"Contact: {EMAIL}\nIBAN {IBAN}" in text


def test_pdf_fallback_decodes_escapes() -> None:
    """Literal strings decode octal and backslash escapes and nested parentheses."""
    content = rb"BT (M\374ller \(Jane\) (x) \\ a\
b) Tj ET"
    assert extract_text(pdf_without_xref(content), "pdf") == "Müller (Jane) (x) \\ ab"


def test_pdf_truncated_raises() -> None:
    """A PDF cut short (no %%EOF) raises ExtractError."""
    data = pdf()
    with pytest.raises(ExtractError, match="pdf"):
        extract_text(data[: len(data) // 2], "pdf")


def test_pdf_garbage_raises() -> None:
    """A PDF header followed by garbage is unreadable."""
    with pytest.raises(ExtractError, match="pdf"):
        extract_text(b"%PDF-1.7\n" + bytes(range(256)) * 4 + b"%%EOF", "pdf")


def test_pdf_max_pages_honoured() -> None:
    """Only the first max_pdf_pages pages are read."""
    pages = [b"BT /F1 12 Tf 72 720 Td (Page-%d) Tj ET" % i for i in range(1, 5)]
    text = extract_text(pdf(pages), "pdf", ExtractLimits(max_pdf_pages=2))
    assert "Page-2" in text
    assert "Page-3" not in text


def test_pdf_flate_bomb_bounded() -> None:
    """A content stream that inflates far beyond max_member_size is cut at the limit, quickly."""
    content = b"BT " + b"(A) Tj " * 3_000_000 + b"ET"
    limits = ExtractLimits(max_member_size=1 << 20)
    start = time.process_time()
    text = extract_text(pdf_without_xref(content), "pdf", limits)
    assert 0 < len(text) <= limits.max_member_size
    assert time.process_time() - start < 60  # a hang guard (CPU time), not a speed claim


def encrypted_pdf(user_password: str) -> bytes:
    writer = PdfWriter(clone_from=io.BytesIO(pdf()))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pdf_owner_password_only_is_readable() -> None:
    """A pypdf-written PDF encrypted with an empty user password is read."""
    assert EMAIL in extract_text(encrypted_pdf(""), "pdf")


def test_pdf_user_password_raises() -> None:
    """A PDF that needs a user password raises ExtractError instead of yielding ciphertext."""
    with pytest.raises(ExtractError, match="encrypted"):
        extract_text(encrypted_pdf("user-secret"), "pdf")


def test_pdf_parse_emits_no_log_records(caplog: pytest.LogCaptureFixture) -> None:
    """pypdf's warnings about a damaged file reach neither the log nor the warnings filter."""
    data = pdf().replace(b"startxref\n", b"startxref\n9").replace(b"xref\n0 ", b"xref\n0 9")
    with caplog.at_level(logging.DEBUG):
        extract_text(data, "pdf")
    assert not [r for r in caplog.records if r.name.startswith("pypdf")]


# ---------------------------------------------------------------- e-mail


def test_eml_headers_bodies_nested_and_attachment() -> None:
    """Address headers, qp and base64 bodies, the nested message and a docx attachment are all read."""
    text = extract_text(eml(), "eml")
    assert "From: Jane Doe <sender@example.com>" in text
    assert "Cc: Jürgen <juergen@example.de>" in text
    assert "Reply-To: reply@example.com" in text
    assert "Subject: Gehaltsabrechnung März" in text
    assert f"Grüße, IBAN: {IBAN} and a soft break here" in text
    assert f"Call me: +49 30 1234567 & write {EMAIL}" in text
    assert "max.inner@example.org" in text
    assert "Inner body text" in text
    assert "Name:\tJane" in text  # from the attached docx
    assert "X-Secret" not in text
    assert "SCRIPT" not in text


def test_eml_unreadable_attachment_is_skipped() -> None:
    """A corrupt attachment leaves the rest of the message readable."""
    text = extract_text(eml(attachment=docx()[:200]), "eml")
    assert IBAN in text


def test_eml_attachment_depth_bounded() -> None:
    """Messages attached inside messages are read down to depth 3 and no deeper."""
    data = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: level 5\r\n\r\nbody-level-5\r\n"
    for level in range(4, -1, -1):
        data = eml(attachment=data, attachment_name="fwd.eml", body=f"body-level-{level}")
    text = extract_text(data, "eml")
    assert all(f"body-level-{level}" in text for level in range(4))
    assert "body-level-4" not in text


def test_eml_deep_mime_nesting_raises_extract_error() -> None:
    """MIME nested thousands deep ends in ExtractError, not RecursionError."""
    nesting = "".join(
        f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(3000)
    )
    data = f"From: a@example.com\r\nSubject: deep\r\n{nesting}Content-Type: text/plain\r\n\r\nx\r\n".encode()
    with pytest.raises(ExtractError, match="eml"):
        extract_text(data, "eml")


# ---------------------------------------------------------------- vcard, icalendar, rtf


def test_vcf_unfolded_name_value_lines() -> None:
    """vCard lines are unfolded and kept as NAME:value so labels survive; photos are dropped."""
    lines = extract_text(VCF, "vcf").splitlines()
    for expected in (
        "FN:Jane Doe",
        "TEL;TYPE=cell:+49 151 12345678",
        f"EMAIL;TYPE=work:{EMAIL}",
        "ADR:;;Street 1;City;;12345;DE",
        "BDAY:1980-01-02",
    ):
        assert expected in lines
    assert "second, with comma" in lines
    assert not [line for line in lines if line.startswith("PHOTO")]


def test_vcard21_quoted_printable_decoded() -> None:
    """vCard 2.1 quoted-printable values are decoded in their charset, soft line breaks joined."""
    lines = extract_text(VCF21, "vcf").splitlines()
    assert "N:Müller;Jürgen" in lines
    assert "ADR;HOME:;;Hauptstraße 1;Berlin;;10115;DE" in lines
    assert "LABEL:Köln" in lines
    assert not [line for line in lines if "PHOTO" in line or "AAQABAAD" in line]


def test_ics_unfolded_and_unescaped() -> None:
    """iCalendar lines are unfolded, quoted params kept, and escapes undone."""
    text = extract_text(ICS, "ics")
    assert f'ATTENDEE;CN="Doe: Jane";ROLE=REQ-PARTICIPANT:mailto:{EMAIL}' in text
    assert f"DESCRIPTION:Account, please:\n{IBAN}" in text.replace("IBAN ", "")


def test_rtf_control_words_stripped() -> None:
    """RTF keeps body text and drops font tables, metadata, pictures and binary data."""
    text = extract_text(RTF, "rtf")
    assert f"Contact: {EMAIL}\nIBAN:\t{IBAN}\nMüller € Euro" in text
    assert "Hidden" not in text
    assert "Arial" not in text
    assert "89504e47" not in text


# ---------------------------------------------------------------- errors


def test_error_message_holds_no_content() -> None:
    """An ExtractError's message names the problem, never the content."""
    secret = "TOPSECRET-4711"
    bad = docx(para(run(secret))).replace(b"PK\x01\x02", b"XX\x01\x02")
    with pytest.raises(ExtractError) as info:
        extract_text(bad, "docx")
    assert secret not in str(info.value)
    assert len(str(info.value)) < 60


def test_third_party_failure_translated(monkeypatch: pytest.MonkeyPatch) -> None:
    """A RecursionError (or any other exception) inside an extractor surfaces as ExtractError."""

    def explode(data: bytes) -> str:
        raise RecursionError

    monkeypatch.setattr(plain_module, "decode_text", explode)
    with pytest.raises(ExtractError) as info:
        extract_text(b"abc", "txt")
    assert isinstance(info.value.__cause__, RecursionError)


def test_keyboard_interrupt_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """KeyboardInterrupt passes through the boundary untouched."""

    def interrupt(data: bytes) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(plain_module, "decode_text", interrupt)
    with pytest.raises(KeyboardInterrupt):
        extract_text(b"abc", "txt")


# ---------------------------------------------------------------- properties


def check_contract(data: bytes, fmt: str) -> None:
    try:
        text = extract_text(data, fmt, SMALL)
    except ExtractError:
        return
    assert isinstance(text, str)
    assert len(text) <= SMALL.max_chars
    text.encode("utf-8")  # never lone surrogates


@settings(max_examples=1000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(fmt=st.sampled_from(sorted(TEXT_FORMATS)), data=st.binary(max_size=4096))
def test_arbitrary_bytes_give_text_or_extract_error(fmt: str, data: bytes) -> None:
    """For every format, arbitrary bytes give a str within max_chars or raise ExtractError."""
    check_contract(data, fmt)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    fmt = draw(st.sampled_from(sorted(SAMPLES)))
    data = bytearray(SAMPLES[fmt])
    for _ in range(draw(st.integers(0, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        del data[draw(st.integers(0, len(data))) :]
    return fmt, bytes(data)


@settings(max_examples=1500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(sample=mutated())
def test_mutated_samples_give_text_or_extract_error(sample: tuple[str, bytes]) -> None:
    """Valid samples with random byte flips and truncation give a str within max_chars or ExtractError."""
    fmt, data = sample
    check_contract(data, fmt)


@st.composite
def mutated_document_xml(draw: st.DrawFn) -> bytes:
    xml = bytearray(
        docx_document(para(run(EMAIL)) + para(run("Name:"), "<w:r><w:tab/></w:r>", run(IBAN))).encode()
    )
    for _ in range(draw(st.integers(1, 6))):
        xml[draw(st.integers(0, len(xml) - 1))] = draw(st.sampled_from(b'<>/&;"= !?[]x\x00\xff'))
    return zip_of({"word/document.xml": bytes(xml)})


@settings(max_examples=300, deadline=None, database=None)
@given(data=mutated_document_xml())
def test_mutated_document_xml_gives_text_or_extract_error(data: bytes) -> None:
    """A well-formed zip holding damaged document XML gives a str within max_chars or ExtractError."""
    check_contract(data, "docx")
