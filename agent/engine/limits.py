"""Scan limits as data. Every limit hit becomes the detection ``Limits.Exceeded.<Which>``, never "clean"."""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["DEFAULT_LIMITS", "LIMIT_NAMES", "ScanLimits"]

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ScanLimits:
    """Bounds on the work spent on one scanned object (a file or a stream, with all its archive members).

    Attributes:
        max_file_size: largest top-level object scanned, in bytes (``MaxFileSize``).
        max_scan_size: most bytes scanned for one object, archive members included (``MaxScanSize``).
        max_recursion: deepest archive nesting followed (``MaxRecursion``).
        max_files: most archive members scanned for one object (``MaxFiles``).
        max_scan_time: wall-clock seconds for one object before its worker is stopped (``MaxScanTime``).
        max_compression_ratio: largest uncompressed/compressed ratio of a member (``CompressionRatio``),
            checked once a member has inflated past ``ratio_floor`` bytes.
        ratio_floor: bytes a member may inflate to before the ratio guard applies.
        max_extract_chars: most characters of text extracted for personal-data detection.
    """

    max_file_size: int = 100 * MIB
    max_scan_size: int = 400 * MIB
    max_recursion: int = 16
    max_files: int = 10_000
    max_scan_time: float = 120.0
    max_compression_ratio: int = 200
    ratio_floor: int = 1 * MIB
    max_extract_chars: int = 1_000_000

    def describe(self) -> dict[str, int | float]:
        """Return the limits as a flat mapping, for the start-up log event and ``config show``."""
        return asdict(self)

    def fingerprint(self) -> str:
        """Return a stable string that changes when any limit changes (part of the verdict-cache key)."""
        return ",".join(f"{k}={v}" for k, v in sorted(asdict(self).items()))


DEFAULT_LIMITS = ScanLimits()

# Names used in ``Limits.Exceeded.<Which>`` detections.
LIMIT_NAMES = (
    "MaxFileSize",
    "MaxScanSize",
    "MaxRecursion",
    "MaxFiles",
    "MaxScanTime",
    "CompressionRatio",
    "MaxMemory",
)
