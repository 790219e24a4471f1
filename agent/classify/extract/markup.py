"""HTML and XML: tags stripped, scripts and styles dropped, entities resolved; XML never expands entities."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import TYPE_CHECKING, Protocol
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from agent.classify.extract.base import ByteChunks, TextSink, decode_text, write_collapsed
from agent.errors import ExtractError

if TYPE_CHECKING:
    from agent.classify.extract.base import Chunks, ExtractLimits

__all__ = ["XmlTarget", "extract_html", "extract_xml", "feed_xml", "html_to_text"]

_HTML_FIRST_CHUNK = 64 * 1024
_HIDDEN = frozenset({"script", "style"})
_INLINE = frozenset(
    {"a", "abbr", "b", "code", "em", "font", "i", "mark", "small", "span", "strong", "sub", "sup", "u"}
)
_BLOCK = frozenset(
    {
        "p", "div", "br", "hr", "li", "ul", "ol", "dl", "dt", "dd", "tr", "table", "h1", "h2", "h3", "h4",
        "h5", "h6", "title", "section", "article", "header", "footer", "nav", "aside", "main", "pre",
        "blockquote", "address", "form", "fieldset", "legend", "figure", "figcaption", "caption", "body",
    }
)  # fmt: skip
_CELLS = frozenset({"td", "th"})


class XmlTarget(Protocol):
    """The parser target the XML extractors implement (element events and character data)."""

    def start(self, tag: str, attrib: dict[str, str], /) -> None:
        """Handle an element's start tag; ``tag`` is ``{namespace}local``."""

    def end(self, tag: str, /) -> None:
        """Handle an element's end tag."""

    def data(self, text: str, /) -> None:
        """Handle character data."""


def feed_xml(chunks: Chunks, target: XmlTarget, sink: TextSink) -> None:
    """Parse XML with defusedxml into ``target``, refusing any entity declaration or external reference.

    Parsing stops early once ``sink`` is full; a document cut short by a size limit is not finished
    (its missing end tags are not an error).

    Args:
        chunks: the document's bytes in chunks.
        target: receives the element events.
        sink: the text budget; checked after every chunk.

    Raises:
        ExtractError: the XML declares entities or is malformed.
    """
    parser = DefusedXMLParser(target=target, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    try:
        for chunk in chunks:
            parser.feed(chunk)
            if sink.full:
                return
        if not chunks.truncated:
            parser.close()
    except DefusedXmlException as exc:
        raise ExtractError("xml entity declarations refused") from exc
    except ParseError as exc:
        raise ExtractError("xml: malformed") from exc


def extract_xml(data: bytes, limits: ExtractLimits) -> str:
    """Return the character data and attribute values of an XML document, one element per line.

    Args:
        data: the document's bytes.
        limits: only ``max_chars`` applies.

    Returns:
        The text content.

    Raises:
        ExtractError: the XML declares entities or is malformed.
    """
    sink = TextSink(limits.max_chars)
    feed_xml(ByteChunks(data), _GenericXml(sink), sink)
    return sink.getvalue()


class _GenericXml:
    """Target for arbitrary XML: text and attribute values, elements separated by newlines."""

    def __init__(self, sink: TextSink) -> None:
        self._sink = sink

    def start(self, _tag: str, attrib: dict[str, str], /) -> None:
        """Write the element's attribute values."""
        self._sink.sep(" ")
        for value in attrib.values():
            write_collapsed(self._sink, value)
            self._sink.sep(" ")

    def end(self, _tag: str, /) -> None:
        """End the element's line."""
        self._sink.sep("\n")

    def data(self, text: str, /) -> None:
        """Write character data with whitespace collapsed."""
        write_collapsed(self._sink, text)


def extract_html(data: bytes, limits: ExtractLimits) -> str:
    """Return the visible text of an HTML document.

    Args:
        data: the document's bytes.
        limits: only ``max_chars`` applies.

    Returns:
        Text with block elements as newlines and table cells as tabs.
    """
    sink = TextSink(limits.max_chars)
    html_to_text(decode_text(data), sink)
    return sink.getvalue()


def html_to_text(text: str, sink: TextSink) -> None:
    """Write the visible text of HTML source to ``sink``, stopping once it is full."""
    parser = _HtmlText(sink)
    start, size = 0, _HTML_FIRST_CHUNK
    # Chunks double in size: the parser rescans an unfinished construct on every feed, so the number
    # of feeds must stay logarithmic while early chunks still let a full sink stop a long document.
    while start < len(text):
        parser.feed(text[start : start + size])
        start, size = start + size, size * 2
        if sink.full:
            return
    parser.close()


class _HtmlText(HTMLParser):
    """Collects text outside scripts and styles; entities are resolved by the parser."""

    def __init__(self, sink: TextSink) -> None:
        super().__init__(convert_charrefs=True)
        self._sink = sink
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Track hidden elements and write block / cell separators."""
        del attrs  # attribute values are markup, not visible text
        self._boundary(tag, opening=True)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """A self-closing tag only separates (``<br/>``), it never opens a hidden section."""
        del attrs
        if tag not in _HIDDEN:
            self._boundary(tag, opening=True)

    def handle_endtag(self, tag: str) -> None:
        """Close hidden elements and write block separators."""
        self._boundary(tag, opening=False)

    def _boundary(self, tag: str, *, opening: bool) -> None:
        """Count hidden-element nesting, or ask the sink for the separator a tag implies."""
        if tag in _HIDDEN:
            self._hidden = self._hidden + 1 if opening else max(self._hidden - 1, 0)
        elif tag in _BLOCK:
            self._sink.sep("\n")
        elif tag in _CELLS:
            self._sink.sep("\t")
        else:
            self._sink.sep("" if tag in _INLINE else " ")

    def handle_data(self, data: str) -> None:
        """Write visible text with whitespace collapsed."""
        if not self._hidden:
            write_collapsed(self._sink, data)
