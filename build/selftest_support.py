"""Parts of the self-test that know nothing of the agent: samples, a raw clamd client, process control.

Samples are generated at run time; EICAR is joined from parts so that no file holds it whole.
"""

# ruff: noqa: INP001
# (build/ is a folder of standalone scripts, not a package.)

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "TIMEOUT",
    "CheckFailed",
    "CheckSkipped",
    "clamd_call",
    "eicar",
    "expect",
    "instream_frames",
    "read_reply",
    "run_command",
    "sample_tree",
    "stop_group",
]

TIMEOUT = 120.0  # seconds: a hang guard per command, not a performance target
_EICAR_PARTS = ("X5O!P%@AP[4\\PZX54(P^)7CC)7}$", "EICAR-STANDARD-ANTIVIRUS-", "TEST-FILE!$H+H*")
_EMAIL, _IBAN, _PHONE = "erika.example@example.org", "DE89 3704 0044 0532 0130 00", "+49 30 901820"
_PII_TEXT = f"Kontakt: Erika Mustermann\nTelefon: {_PHONE}\nIBAN: {_IBAN}\nE-Mail: {_EMAIL}\n"
_CHUNK = 4096


class CheckFailed(Exception):
    """A check ran and the binary did not behave as a user needs."""


class CheckSkipped(Exception):
    """A check that cannot run against this build yet; reported loudly, never counted as passed."""


def eicar() -> bytes:
    """The 68-byte EICAR test file."""
    return "".join(_EICAR_PARTS).encode("ascii")


# ---------------------------------------------------------------- clamd wire protocol (raw socket)
def instream_frames(data: bytes, chunk: int = _CHUNK) -> bytes:
    """``data`` as clamd INSTREAM chunks (``<uint32 BE length><bytes>``), ended by a zero-length chunk."""
    if chunk < 1:
        raise ValueError("chunk must be at least 1")
    out = bytearray()
    for start in range(0, len(data), chunk):
        piece = data[start : start + chunk]
        out += len(piece).to_bytes(4, "big") + piece
    return bytes(out + b"\0\0\0\0")


def read_reply(recv: Callable[[int], bytes]) -> str:
    """Read one NUL-terminated (``z``-mode) reply through ``recv``; fail on a reply cut short."""
    buf = bytearray()
    while b"\0" not in buf:
        part = recv(_CHUNK)
        if not part:
            raise CheckFailed(f"clamd reply cut short: {bytes(buf)!r}")
        buf += part
    return buf[: buf.index(b"\0")].decode("utf-8", "replace")


def clamd_call(path: Path, command: str, payload: bytes | None = None) -> str:
    """Send one ``z``-mode command (and an INSTREAM payload) to the socket at ``path``; return the reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30.0)
        sock.connect(str(path))
        sock.sendall(b"z" + command.encode() + b"\0")
        if payload is not None:
            sock.sendall(instream_frames(payload))
        return read_reply(sock.recv)


# ---------------------------------------------------------------- samples
def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _pdf(text: str) -> bytes:
    """A one-page PDF whose FlateDecode content stream shows ``text`` (pypdf must inflate and parse it)."""
    content = zlib.compress(b"BT /F1 12 Tf 72 720 Td (" + text.encode("latin-1") + b") Tj ET")
    page = (
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 5 0 R"
        b" /Resources << /Font << /F1 3 0 R >> >> >>"
    )
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        page,
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(content), content),
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _docx(text: str) -> bytes:
    """A minimal DOCX (the XML goes through defusedxml in the worker)."""
    ns = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    body = f'<w:document xmlns:w="{ns}"><w:body><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:body></w:document>'
    types = (
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Override PartName="/word/document.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
    )
    return _zip({"[Content_Types].xml": types.encode(), "word/document.xml": body.encode()})


def sample_tree(root: Path, plain_files: int = 40) -> dict[str, str]:
    """Write a tree of samples under ``root``; return {relative path: expected verdict}."""
    files: dict[str, tuple[bytes, str]] = {
        "eicar.com": (eicar(), "malicious"),
        "deep/archive.zip": (_zip({"readme.txt": b"hello", "eicar.com": eicar()}), "malicious"),
        "docs/contact.txt": (_PII_TEXT.encode(), "clean"),
        "docs/letter.pdf": (_pdf(f"Contact: {_EMAIL}"), "clean"),
        "docs/letter.docx": (_docx(f"Contact: {_EMAIL}"), "clean"),
    }
    for i in range(plain_files):
        files[f"notes/{i % 4}/note{i}.txt"] = (f"shopping list {i}: bread, milk\n".encode(), "clean")
    for rel, (data, _) in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return {rel: verdict for rel, (_, verdict) in files.items()}


def run_command(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in its own process group; on the hang guard, kill the whole group and fail.

    A one-file binary is two processes (the bootloader and Python), plus scan workers: killing only
    the one we started would leave the others running.
    """
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        stop_group(proc)
        raise CheckFailed(f"{cmd[-1]!r} still running after {TIMEOUT:.0f} s") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def stop_group(proc: subprocess.Popen[Any]) -> None:
    """Stop ``proc``'s process group: SIGTERM (so the bootloader removes its temp dir), then SIGKILL."""
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, TIMEOUT)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.communicate(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        return


def expect(condition: object, message: str) -> None:
    """Fail the current check with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(message)
