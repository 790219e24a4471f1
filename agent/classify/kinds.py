"""File kind from magic bytes, with the name used only to split text formats.

``sniff(head, name)`` looks at the first bytes of an object (``HEAD_SIZE`` is enough) and, for zip
containers, at the member names. It returns a :class:`FileType`: one of the seven reported kinds and a
finer ``fmt`` that picks the text extractor. The extension never overrides the magic: a PE named
``report.pdf`` is an executable.
"""

from __future__ import annotations

import enum
import zipfile
from dataclasses import dataclass
from pathlib import PurePath
from typing import IO

__all__ = ["HEAD_SIZE", "FileType", "Kind", "sniff", "sniff_zip"]

HEAD_SIZE = 8192


class Kind(enum.StrEnum):
    """The coarse kinds reported in verdicts (and upstream)."""

    EXECUTABLE = "executable"
    SCRIPT = "script"
    DOCUMENT = "document"
    ARCHIVE = "archive"
    IMAGE = "image"
    TEXT = "text"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class FileType:
    """What an object is: the reported kind and the concrete format (``pdf``, ``docx``, ``csv`` ...)."""

    kind: Kind
    fmt: str


_MAGIC: tuple[tuple[bytes, int, Kind, str], ...] = (
    (b"\x7fELF", 0, Kind.EXECUTABLE, "elf"),
    (b"MZ", 0, Kind.EXECUTABLE, "pe"),
    (b"\xfe\xed\xfa\xce", 0, Kind.EXECUTABLE, "macho"),
    (b"\xfe\xed\xfa\xcf", 0, Kind.EXECUTABLE, "macho"),
    (b"\xce\xfa\xed\xfe", 0, Kind.EXECUTABLE, "macho"),
    (b"\xcf\xfa\xed\xfe", 0, Kind.EXECUTABLE, "macho"),
    (b"\xca\xfe\xba\xbe", 0, Kind.EXECUTABLE, "macho"),
    (b"\x00asm", 0, Kind.EXECUTABLE, "wasm"),
    (b"%PDF-", 0, Kind.DOCUMENT, "pdf"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 0, Kind.DOCUMENT, "ole"),
    (b"{\\rtf", 0, Kind.DOCUMENT, "rtf"),
    (b"\x1f\x8b", 0, Kind.ARCHIVE, "gzip"),
    (b"BZh", 0, Kind.ARCHIVE, "bzip2"),
    (b"\xfd7zXZ\x00", 0, Kind.ARCHIVE, "xz"),
    (b"7z\xbc\xaf\x27\x1c", 0, Kind.ARCHIVE, "7z"),
    (b"Rar!\x1a\x07", 0, Kind.ARCHIVE, "rar"),
    (b"ustar", 257, Kind.ARCHIVE, "tar"),
    (b"\x89PNG\r\n\x1a\n", 0, Kind.IMAGE, "png"),
    (b"\xff\xd8\xff", 0, Kind.IMAGE, "jpeg"),
    (b"GIF87a", 0, Kind.IMAGE, "gif"),
    (b"GIF89a", 0, Kind.IMAGE, "gif"),
    (b"II*\x00", 0, Kind.IMAGE, "tiff"),
    (b"MM\x00*", 0, Kind.IMAGE, "tiff"),
    (b"BM", 0, Kind.IMAGE, "bmp"),
    (b"\x00\x00\x01\x00", 0, Kind.IMAGE, "ico"),
)

_SCRIPT_EXT = {
    ".sh": "shell",
    ".bash": "shell",
    ".zsh": "shell",
    ".ps1": "powershell",
    ".psm1": "powershell",
    ".py": "python",
    ".js": "js",
    ".mjs": "js",
    ".vbs": "vbs",
    ".vbe": "vbs",
    ".bat": "batch",
    ".cmd": "batch",
    ".pl": "perl",
    ".rb": "ruby",
    ".php": "php",
    ".hta": "html",
}
_SHEBANG = {
    b"sh": "shell",
    b"bash": "shell",
    b"dash": "shell",
    b"zsh": "shell",
    b"python": "python",
    b"python3": "python",
    b"pwsh": "powershell",
    b"node": "js",
    b"perl": "perl",
    b"ruby": "ruby",
    b"php": "php",
}
_TEXT_EXT = {
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".md": "md",
    ".markdown": "md",
    ".log": "log",
    ".eml": "eml",
    ".vcf": "vcf",
    ".ics": "ics",
    ".xml": "xml",
}
_OOXML = {"word/": "docx", "xl/": "xlsx", "ppt/": "pptx"}
_ODF = {
    b"application/vnd.oasis.opendocument.text": "odt",
    b"application/vnd.oasis.opendocument.spreadsheet": "ods",
    b"application/vnd.oasis.opendocument.presentation": "odp",
}
_PRINTABLE = frozenset(range(32, 127)) | {9, 10, 12, 13, 27}


def sniff(head: bytes, name: str = "", zip_names: tuple[str, ...] = ()) -> FileType:
    """Return the type of an object from its first bytes; ``name`` only refines text and scripts.

    ``zip_names`` are the member names of a zip container when the caller has them; without them a zip
    is an archive unless its first local header names an Office or ODF part.
    """
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_type(head, zip_names)
    for magic, offset, kind, fmt in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return FileType(kind, fmt)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return FileType(Kind.IMAGE, "webp")
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypavif", b"ftypmif1"):
        return FileType(Kind.IMAGE, "heif")
    if _looks_text(head):
        return _text_type(head, name)
    return FileType(Kind.OTHER, "binary")


def sniff_zip(archive: zipfile.ZipFile) -> FileType:
    """Return the type of an opened zip from its member names (docx, xlsx, odt, jar, plain zip)."""
    names = tuple(archive.namelist()[:64])
    head = b""
    if "mimetype" in names:
        head = _read_small(archive, "mimetype")
    return _zip_type(b"PK\x03\x04" + bytes(26) + b"mimetype" + head, names)


def _read_small(archive: zipfile.ZipFile, member: str) -> bytes:
    try:
        fh: IO[bytes]
        with archive.open(member) as fh:
            return fh.read(128)
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError):
        return b""


def _zip_type(head: bytes, names: tuple[str, ...]) -> FileType:
    # The first local file header's name sits at offset 30; ODF puts "mimetype" first, stored.
    if head[30:38] == b"mimetype":
        for mime, fmt in _ODF.items():
            if mime in head[38:200]:
                return FileType(Kind.DOCUMENT, fmt)
    candidates = names or (head[30:200].split(b"PK", 1)[0].decode("latin-1"),)
    for member in candidates:
        for prefix, fmt in _OOXML.items():
            if member.startswith(prefix):
                return FileType(Kind.DOCUMENT, fmt)
        if member == "[Content_Types].xml" and not names:
            return FileType(Kind.DOCUMENT, "ooxml")
        if member.startswith("META-INF/MANIFEST.MF") or member.endswith(".class"):
            return FileType(Kind.EXECUTABLE, "jar")
        if member in {"AndroidManifest.xml", "classes.dex"}:
            return FileType(Kind.EXECUTABLE, "apk")
    return FileType(Kind.ARCHIVE, "zip")


def _looks_text(head: bytes) -> bool:
    if not head:
        return True
    if head.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return True
    if b"\x00" in head:
        return False
    sample = head[:4096]
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte sequence cut at the end of the sample is still text.
        if exc.start < len(sample) - 4:
            return _mostly_printable(sample)
    return True


def _mostly_printable(sample: bytes) -> bool:
    printable = sum(1 for b in sample if b in _PRINTABLE or b >= 0x80)
    return printable >= 0.95 * len(sample)


def _text_type(head: bytes, name: str) -> FileType:
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"#!"):
        interp = stripped[2:128].split(b"\n", 1)[0].strip().split(b"/")[-1].split(b" ")
        word = interp[-1] if interp[0] == b"env" and len(interp) > 1 else interp[0]
        return FileType(Kind.SCRIPT, _SHEBANG.get(word.rstrip(b"0123456789."), "shell"))
    suffix = PurePath(name).suffix.lower() if name else ""
    if suffix in _SCRIPT_EXT:
        return FileType(Kind.SCRIPT, _SCRIPT_EXT[suffix])
    lower = stripped[:512].lower()
    if lower.startswith(b"begin:vcard"):
        return FileType(Kind.DOCUMENT, "vcf")
    if lower.startswith(b"begin:vcalendar"):
        return FileType(Kind.DOCUMENT, "ics")
    if lower.startswith((b"<!doctype html", b"<html")):
        return FileType(Kind.DOCUMENT, "html")
    if _is_mail(lower):
        return FileType(Kind.DOCUMENT, "eml")
    fmt = _TEXT_EXT.get(suffix, "txt")
    if fmt in ("eml", "vcf", "ics", "html"):
        return FileType(Kind.DOCUMENT, fmt)
    return FileType(Kind.TEXT, fmt)


def _is_mail(lower: bytes) -> bool:
    first = lower.split(b"\n", 1)[0]
    headers = (b"from:", b"received:", b"return-path:", b"message-id:", b"mime-version:", b"delivered-to:")
    return first.startswith(headers) and b"\n" in lower and (b"subject:" in lower or b"to:" in lower)
