"""On-device classification: file kind from magic bytes, text extraction, personal-data detectors."""

from agent.classify.classifier import Classifier
from agent.classify.detectors import ENTITY_TYPES, detect
from agent.classify.extract import ExtractLimits, extract_text
from agent.classify.kinds import FileType, Kind, sniff

__all__ = [
    "ENTITY_TYPES",
    "Classifier",
    "ExtractLimits",
    "FileType",
    "Kind",
    "detect",
    "extract_text",
    "sniff",
]
