"""Office documents: OOXML (docx, xlsx, pptx) and ODF (odt, ods, odp), read as bounded zip + XML."""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.classify.extract.base import TextSink, write_collapsed
from agent.classify.extract.markup import feed_xml
from agent.errors import ExtractError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from agent.classify.extract.base import ExtractLimits, Extractor

__all__ = ["EXTRACTORS", "OFFICE_FORMATS", "extract_office"]

OFFICE_FORMATS = frozenset({"docx", "xlsx", "pptx", "odt", "ods", "odp", "ooxml"})
_ODF = frozenset({"odt", "ods", "odp"})
_CHUNK = 256 * 1024
_RATIO_FLOOR = 1 << 20  # tiny members may compress far better than max_ratio; judge from 1 MiB on
_COMPRESSIONS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})  # what Office and ODF write
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    struct.error,
    OSError,
    EOFError,
    ValueError,
    KeyError,
    NotImplementedError,
)
_PARTS = {
    "docx": re.compile(r"word/(document|header|footer|footnotes|endnotes|comments)\d*\.xml"),
    "pptx": re.compile(r"ppt/(slides/slide|notesSlides/notesSlide)\d+\.xml"),
    "odf": re.compile(r"(content|styles)\.xml"),
}
_PART_ORDER = ("document", "slides/", "content", "header", "footer", "footnotes", "endnotes", "notes")
_SHEET = re.compile(r"xl/worksheets/sheet\d+\.xml")
_NUMBER = re.compile(r"(\d{1,9})\.xml$")
_TAB_STOPS = frozenset({"tabs", "tabLst"})


@dataclass(frozen=True, slots=True)
class _Flow:
    """Which local element names carry text and which end a paragraph, cell or row."""

    text: frozenset[str]
    para: frozenset[str]
    cell: frozenset[str]
    row: frozenset[str]
    tab: frozenset[str]
    brk: frozenset[str]
    space: frozenset[str]
    hidden: frozenset[str]
    collapse: bool  # ODF collapses whitespace runs in text (text:s stands for extra spaces)


_OOXML_FLOW = _Flow(
    text=frozenset({"t", "delText"}),
    para=frozenset({"p"}),
    cell=frozenset({"tc"}),
    row=frozenset({"tr"}),
    tab=frozenset({"tab"}),
    brk=frozenset({"br", "cr"}),
    space=frozenset(),
    hidden=frozenset({"Fallback"}),  # mc:Fallback repeats the text of the mc:Choice before it
    collapse=False,
)
_ODF_FLOW = _Flow(
    text=frozenset({"p", "h"}),
    para=frozenset({"p", "h"}),
    cell=frozenset({"table-cell", "covered-table-cell"}),
    row=frozenset({"table-row"}),
    tab=frozenset({"tab"}),
    brk=frozenset({"line-break"}),
    space=frozenset({"s"}),
    hidden=frozenset(),
    collapse=True,
)


def extract_office(data: bytes, limits: ExtractLimits, fmt: str) -> str:
    """Return the text of an Office or ODF document, paragraphs as newlines and cells as tabs.

    Args:
        data: the document's bytes (a zip).
        limits: ``max_chars``, ``max_members``, ``max_member_size`` and ``max_ratio`` apply.
        fmt: ``docx``, ``xlsx``, ``pptx``, ``odt``, ``ods``, ``odp``, or ``ooxml`` (any of the first three).

    Returns:
        The document text.

    Raises:
        ExtractError: corrupt zip, bad XML, a compression-ratio bomb, or no document parts.
    """
    sink = TextSink(limits.max_chars)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = {info.filename: info for info in archive.infolist()[: limits.max_members]}
            _extract_parts(archive, members, _flavour(fmt, members), limits, sink)
    except _ZIP_ERRORS as exc:
        raise ExtractError("corrupt zip") from exc
    return sink.getvalue()


def _flavour(fmt: str, members: dict[str, zipfile.ZipInfo]) -> str:
    """Return ``docx``, ``xlsx``, ``pptx`` or ``odf``; ``ooxml`` is decided by the member names."""
    if fmt in _ODF:
        return "odf"
    if fmt != "ooxml":
        return fmt
    for prefix, flavour in (("word/", "docx"), ("xl/", "xlsx"), ("ppt/", "pptx")):
        if any(name.startswith(prefix) for name in members):
            return flavour
    raise ExtractError("office: no document parts")


def _extract_parts(
    archive: zipfile.ZipFile,
    members: dict[str, zipfile.ZipInfo],
    flavour: str,
    limits: ExtractLimits,
    sink: TextSink,
) -> None:
    """Feed the text-bearing parts of one flavour to their XML targets."""
    if flavour == "xlsx":
        _extract_xlsx(archive, members, limits, sink)
        return
    pattern = _PARTS[flavour]
    parts = sorted((name for name in members if pattern.fullmatch(name)), key=_part_key)
    if not parts:
        raise ExtractError("office: no document parts")
    flow = _ODF_FLOW if flavour == "odf" else _OOXML_FLOW
    for name in parts:
        if sink.full:
            return
        feed_xml(_Member(archive, members[name], limits), _FlowTarget(sink, flow), sink)
        sink.sep("\n")


def _part_key(name: str) -> tuple[int, int, str]:
    """Sort parts: main body first, then headers, footers, notes, comments; numbered parts in order."""
    rank = next((i for i, key in enumerate(_PART_ORDER) if key in name), len(_PART_ORDER))
    number = _NUMBER.search(name)
    return rank, int(number.group(1)) if number else 0, name


def _extract_xlsx(
    archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], limits: ExtractLimits, sink: TextSink
) -> None:
    """Write each sheet row by row, cells separated by tabs, shared strings resolved in place."""
    shared = _SharedStrings(limits.max_chars)
    if "xl/sharedStrings.xml" in members:
        feed_xml(_Member(archive, members["xl/sharedStrings.xml"], limits), shared, sink)
    sheets = sorted((name for name in members if _SHEET.fullmatch(name)), key=_part_key)
    if not sheets and not shared.strings:
        raise ExtractError("office: no document parts")
    for name in sheets:
        if sink.full:
            return
        feed_xml(_Member(archive, members[name], limits), _SheetTarget(sink, shared.strings), sink)
        sink.sep("\n")
    if not sheets:
        for text in shared.strings:
            sink.write(text)
            sink.sep("\n")


class _Member:
    """One zip member read in chunks, bounded by ``max_member_size`` and ``max_ratio``.

    The declared uncompressed size is never trusted: bytes are counted as they come out of the
    decompressor, which is asked for at most one chunk at a time.
    """

    def __init__(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: ExtractLimits) -> None:
        self._archive = archive
        self._info = info
        self._limits = limits
        self.truncated = False

    def __iter__(self) -> Iterator[bytes]:
        info, limit = self._info, self._limits.max_member_size
        if info.flag_bits & 0x1:
            raise ExtractError("office: encrypted member")
        if info.compress_type not in _COMPRESSIONS:
            raise ExtractError("office: unsupported compression")
        ratio_cap = max(info.compress_size, 1) * self._limits.max_ratio
        total = 0
        with self._archive.open(info) as stream:
            while chunk := stream.read(min(_CHUNK, limit - total + 1)):
                total += len(chunk)
                if total > _RATIO_FLOOR and total > ratio_cap:
                    raise ExtractError("zip member exceeds compression ratio limit")
                if total > limit:
                    self.truncated = True
                    yield chunk[: len(chunk) - (total - limit)]
                    return
                yield chunk


def _local(tag: str) -> str:
    """Return the local part of a ``{namespace}local`` tag."""
    return tag.rpartition("}")[2]


class _FlowTarget:
    """XML target for running text (docx, pptx, ODF): text elements, breaks, cells and rows."""

    def __init__(self, sink: TextSink, flow: _Flow) -> None:
        self._sink = sink
        self._flow = flow
        self._names: list[str] = []
        self._text = 0
        self._cells = 0
        self._hidden = 0

    def start(self, tag: str, _attrib: dict[str, str], /) -> None:
        """Enter an element: count text / cell / hidden nesting, write breaks and tabs."""
        name, flow = _local(tag), self._flow
        parent = self._names[-1] if self._names else ""
        self._names.append(name)
        self._text += name in flow.text
        self._cells += name in flow.cell
        self._hidden += name in flow.hidden
        if name in flow.tab and parent not in _TAB_STOPS:
            self._sink.sep("\t")
        elif name in flow.brk:
            self._sink.sep("\n")
        elif name in flow.space:
            self._sink.sep(" ")

    def end(self, tag: str, /) -> None:
        """Leave an element: paragraphs end in a newline (a space inside a cell), cells in a tab."""
        name, flow = _local(tag), self._flow
        if self._names:
            self._names.pop()
        self._text -= name in flow.text
        self._hidden -= name in flow.hidden
        if name in flow.para:
            self._sink.sep(" " if self._cells else "\n")
        if name in flow.cell:
            self._cells -= 1
            self._sink.sep("\t")
        elif name in flow.row:
            self._sink.sep("\n")

    def data(self, text: str, /) -> None:
        """Write character data that sits inside a text element."""
        if self._text > 0 and not self._hidden:
            if self._flow.collapse:
                write_collapsed(self._sink, text)
            else:
                self._sink.write(text)


class _SharedStrings:
    """XML target for ``xl/sharedStrings.xml``: one string per ``si``, phonetic runs left out."""

    def __init__(self, budget: int) -> None:
        self.strings: list[str] = []
        self._parts: list[str] = []
        self._in_text = False
        self._phonetic = 0
        self._left = budget

    def start(self, tag: str, _attrib: dict[str, str], /) -> None:
        """Enter an element."""
        name = _local(tag)
        if name == "si":
            self._parts = []
        self._in_text = self._in_text or name == "t"
        self._phonetic += name == "rPh"

    def end(self, tag: str, /) -> None:
        """Leave an element; an ``si`` end stores the string (cut once the budget is spent)."""
        name = _local(tag)
        if name == "t":
            self._in_text = False
        elif name == "rPh":
            self._phonetic -= 1
        elif name == "si":
            text = "".join(self._parts)[: max(self._left, 0)]
            self._left -= len(text)
            self.strings.append(text)

    def data(self, text: str, /) -> None:
        """Collect the text of a string."""
        if self._in_text and not self._phonetic and self._left > 0:
            self._parts.append(text)


class _SheetTarget:
    """XML target for a worksheet: cells in order, shared-string indexes resolved."""

    def __init__(self, sink: TextSink, shared: list[str]) -> None:
        self._sink = sink
        self._shared = shared
        self._type = ""
        self._parts: list[str] = []
        self._collect = False
        self._phonetic = 0

    def start(self, tag: str, attrib: dict[str, str], /) -> None:
        """Enter an element; a cell's ``t`` attribute says how to read its value."""
        name = _local(tag)
        if name == "c":
            self._type = attrib.get("t", "n")
            self._parts = []
        elif name in ("v", "t"):
            self._collect = True
        self._phonetic += name == "rPh"

    def end(self, tag: str, /) -> None:
        """Leave an element; a cell end writes the value and a tab, a row end a newline."""
        name = _local(tag)
        if name in ("v", "t"):
            self._collect = False
        elif name == "rPh":
            self._phonetic -= 1
        elif name == "c":
            self._write_cell("".join(self._parts))
        elif name == "row":
            self._sink.sep("\n")

    def data(self, text: str, /) -> None:
        """Collect a value or inline string."""
        if self._collect and not self._phonetic:
            self._parts.append(text)

    def _write_cell(self, value: str) -> None:
        """Write one cell's value (errors and empty cells write nothing) and end it with a tab."""
        if self._type == "s":
            index = value.strip()
            ok = index.isascii() and index.isdigit() and len(index) < 10 and int(index) < len(self._shared)
            value = self._shared[int(index)] if ok else ""
        if self._type != "e":
            self._sink.write(value)
        self._sink.sep("\t")


def _extractor(fmt: str) -> Extractor:
    """Bind ``fmt`` into an :class:`Extractor`."""

    def extract(data: bytes, limits: ExtractLimits, /) -> str:
        return extract_office(data, limits, fmt)

    return extract


EXTRACTORS: dict[str, Extractor] = {fmt: _extractor(fmt) for fmt in sorted(OFFICE_FORMATS)}
