"""Canary strings and every encoded form in which a leaked canary could appear."""

from __future__ import annotations

import base64
import secrets
import urllib.parse


def make(label: str) -> str:
    """A unique canary: a label and 12 random hex digits."""
    return f"CNRY{label}{secrets.token_hex(6)}"


def _base64_forms(raw: bytes) -> list[bytes]:
    """Substrings that any base64 encoding of data containing ``raw`` must hold (3 alignments)."""
    forms = []
    for pad in range(3):
        enc = base64.b64encode(b"\0" * pad + raw)
        start = (pad * 4 + 2) // 3 + (1 if pad else 0)
        forms.append(enc[start : start + max(4, (len(raw) * 4) // 3 - 4)])
    return forms


def forms(value: str) -> list[bytes]:
    """Plain, lower/upper case, hex, URL-encoded and base64 forms of ``value``."""
    raw = value.encode()
    out = {raw, raw.lower(), raw.upper(), raw.hex().encode(), raw.hex().upper().encode()}
    out.add(urllib.parse.quote(value, safe="").encode())
    out.update(_base64_forms(raw))
    out.update(base64.urlsafe_b64encode(raw)[:-4] for _ in [0])
    return [f for f in out if len(f) >= 8]


def find(blob: bytes, values: list[str]) -> list[str]:
    """Return the canaries (by value) that appear in ``blob`` in any form."""
    return [v for v in values if any(f in blob for f in forms(v))]
