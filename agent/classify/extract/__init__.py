"""Text extraction for classification: bytes of a known format in, bounded plain text out.

``extract_text(data, fmt)`` takes the ``fmt`` that :func:`agent.classify.kinds.sniff` returned and
gives the object's text, at most ``limits.max_chars`` characters (longer text is truncated). Formats
without text (binaries, images, archives) give ``""``. Every failure, whatever the parser underneath,
surfaces as :class:`~agent.errors.ExtractError` with a short reason that holds no content or names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.classify.extract import mail
from agent.classify.extract.base import ExtractLimits
from agent.classify.extract.markup import extract_html, extract_xml
from agent.classify.extract.office import EXTRACTORS as OFFICE_EXTRACTORS
from agent.classify.extract.pdf import extract_pdf
from agent.classify.extract.plain import PLAIN_FORMATS, extract_cards, extract_plain
from agent.classify.extract.rtf import extract_rtf
from agent.errors import ExtractError

if TYPE_CHECKING:
    from agent.classify.extract.base import Extractor

__all__ = ["TEXT_FORMATS", "ExtractLimits", "extract_text"]

_DEFAULT_LIMITS = ExtractLimits()
_EXTRACTORS: dict[str, Extractor] = {
    **dict.fromkeys(PLAIN_FORMATS, extract_plain),
    "html": extract_html,
    "xml": extract_xml,
    "vcf": extract_cards,
    "ics": extract_cards,
    "rtf": extract_rtf,
    "pdf": extract_pdf,
    **OFFICE_EXTRACTORS,
}

TEXT_FORMATS: frozenset[str] = frozenset({*_EXTRACTORS, "eml"})
"""Every ``fmt`` that :func:`extract_text` reads; any other gives ``""``."""


def extract_text(data: bytes, fmt: str, limits: ExtractLimits = _DEFAULT_LIMITS) -> str:
    """Return the text of an object of format ``fmt``, at most ``limits.max_chars`` characters.

    Args:
        data: the object's bytes.
        fmt: the format from :func:`agent.classify.kinds.sniff` (``docx``, ``pdf``, ``csv`` ...).
        limits: bounds on output size and on the work done for containers and compressed streams.

    Returns:
        The extracted text; ``""`` for a format with no text.

    Raises:
        ExtractError: the object is corrupt, refused (XML entity declarations, compression bombs) or
            unreadable; the message is a short reason without content.
    """
    return _extract(data, fmt, limits, 0)


def _extract(data: bytes, fmt: str, limits: ExtractLimits, depth: int) -> str:
    """Extract at attachment ``depth``; every non-``ExtractError`` failure is translated here."""
    try:
        if fmt == "eml":
            text = mail.extract_eml(data, limits, depth, _extract)
        elif (extractor := _EXTRACTORS.get(fmt)) is not None:
            text = extractor(data, limits)
        else:
            return ""
    except ExtractError:
        raise
    except Exception as exc:  # third-party parsers fail in many ways, RecursionError and MemoryError too
        raise ExtractError(f"{fmt}: unreadable") from exc
    return text[: max(limits.max_chars, 0)]
