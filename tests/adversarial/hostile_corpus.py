"""Hostile inputs built at run time, each with the verdict the agent must give for it.

Used by ``test_hostile_corpus.py`` (one CLI run over all of them) and by
``tests/benchmarks/bench_adversarial.py`` (each case alone, with its peak memory and time).
Nothing here is malware: the only "malicious" content is the EICAR test file from ``samples``.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import tarfile
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import samples

MIB = 1 << 20
ESCAPE_NAME = "evil\n\x1b[2J\x1b]0;pwned\x07name.com"  # a newline, clear-screen and a window-title OSC
EMAIL = "jane.doe@example.com"
W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
TYPES = '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>'


@dataclass(frozen=True, slots=True)
class Case:
    """One hostile object: where it is under the corpus root and what the agent must say about it."""

    path: str  # relative to the corpus root
    verdicts: frozenset[str]  # acceptable verdicts; "clean" only where nothing hostile can hide
    doc: str
    limits: frozenset[str] = frozenset()  # with "unscanned": one of these limits must be named
    reason: str = ""  # with "error": a substring the reason must hold
    build: Callable[[Path], object] | None = field(default=None, compare=False)

    def check(self, line: dict) -> list[str]:
        """Problems with one ``scan --json`` line for this case (empty when it is as expected)."""
        verdict = line["verdict"]
        problems = [] if verdict in self.verdicts else [f"verdict {verdict!r} not in {sorted(self.verdicts)}"]
        names = {d["name"].removeprefix("Limits.Exceeded.") for d in line["detections"]}
        if verdict == "unscanned" and self.limits and not names & self.limits:
            problems.append(f"limit {sorted(names)} is none of {sorted(self.limits)}")
        if verdict == "error" and self.reason and self.reason not in (line["reason"] or ""):
            problems.append(f"reason {line['reason']!r} lacks {self.reason!r}")
        return problems


# ---------------------------------------------------------------- archives


def deflate_bomb(path: Path) -> None:
    """100 MB of zeros deflated into about 100 KB."""
    path.write_bytes(samples.zip_of({"zeros.bin": bytes(100 * MIB)}))


def nested_bomb(path: Path, leaf: int = 8 * MIB, fan: int = 16, levels: int = 4) -> None:
    """42.zip-style: ``fan`` zips of ``fan`` zips ... of ``fan`` zero files: 16**4 x 8 MiB = 512 GiB."""
    zeros = bytes(leaf)
    data = samples.zip_of({f"{i:x}.bin": zeros for i in range(fan)})
    for level in range(levels - 1):
        data = samples.zip_of({f"lib{level}-{i:x}.zip": data for i in range(fan)})
    path.write_bytes(data)


def overlapping_zip(path: Path, entries: int = 250, size: int = 64 * MIB) -> None:
    """Fifield's full-overlap construction: every central-directory entry names the same local file.

    One deflated kernel of ``size`` zeros; ``entries`` central records all point at it, so a naive
    reader inflates it ``entries`` times (16 GB from a ~64 KB file).
    """
    name = b"kernel.bin"
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = packer.compress(bytes(size)) + packer.flush()
    crc = zlib.crc32(bytes(size))
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(body), size, len(name), 0)
    central = b"".join(
        struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            20,
            20,
            0,
            8,
            0,
            0,
            crc,
            len(body),
            size,
            len(name),
            0,
            0,
            0,
            0,
            0,
            0,
        )
        + name
        for _ in range(entries)
    )
    offset = len(local) + len(name) + len(body)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, entries, entries, len(central), offset, 0)
    path.write_bytes(local + name + body + central + end)


def many_entries(path: Path, count: int = 100_000) -> None:
    """A zip with ``count`` tiny members."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for i in range(count):
            zf.writestr(zipfile.ZipInfo(f"d{i // 1000}/f{i}.txt"), b"x")
    path.write_bytes(buf.getvalue())


def links_tar(path: Path, outside: Path) -> None:
    """A tar whose symlink and hardlink point at a file outside the tree that holds EICAR."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        note = b"release notes\n"
        info = tarfile.TarInfo("notes.txt")
        info.size = len(note)
        tf.addfile(info, io.BytesIO(note))
        for kind, member in ((tarfile.SYMTYPE, "sym"), (tarfile.LNKTYPE, "hard")):
            link = tarfile.TarInfo(member)
            link.type = kind
            link.linkname = str(outside)
            tf.addfile(link)
        escape = tarfile.TarInfo("../../escape")
        escape.type = tarfile.SYMTYPE
        escape.linkname = "../../../../" + str(outside).lstrip("/")
        tf.addfile(escape)
    path.write_bytes(buf.getvalue())


# ---------------------------------------------------------------- documents


def looping_pdf(path: Path) -> None:
    """A PDF whose page tree holds itself, whose object stream extends itself, whose xref /Prev loops."""
    content = f"BT /F1 12 Tf 72 712 Td (Contact {EMAIL}) Tj ET".encode()
    objstm_body = b"6 0 << /Next 6 0 R /Kids [2 0 R] >>"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R 2 0 R] /Count 2 /Parent 2 0 R >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /ObjStm /N 1 /First 4 /Extends 5 0 R /Length %d >>\nstream\n" % len(objstm_body)
        + objstm_body
        + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Root 1 0 R /Size %d /Prev %d >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
        xref,
    )
    path.write_bytes(bytes(out))


def text_pdf(text: str) -> bytes:
    """A one-page PDF showing ``text``, with a correct cross-reference table."""
    content = f"BT /F1 12 Tf 72 712 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
            b" /Resources << /Font << /F1 5 0 R >> >> >>"
        ),
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Root 1 0 R /Size %d >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def text_docx(text: str) -> bytes:
    """A minimal docx whose body is one paragraph of ``text``."""
    document = (
        f'<?xml version="1.0"?><w:document xmlns:w="{W_NS}"><w:body><w:p><w:r><w:t>{text}</w:t></w:r></w:p>'
        "</w:body></w:document>"
    )
    return samples.zip_of({"[Content_Types].xml": TYPES.encode(), "word/document.xml": document.encode()})


LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + "".join(
        f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n' for i in range(1, 10)
    )
    + "]>\n"
)


def laughs_docx(path: Path) -> None:
    """A docx whose document.xml declares the billion-laughs entities and uses the last one."""
    document = (
        LAUGHS.replace("lolz", "w:document")
        + f'<w:document xmlns:w="{W_NS}"><w:body><w:p><w:r><w:t>&lol9; {EMAIL}</w:t></w:r></w:p>'
        + "</w:body></w:document>"
    )
    path.write_bytes(
        samples.zip_of({"[Content_Types].xml": TYPES.encode(), "word/document.xml": document.encode()})
    )


# ---------------------------------------------------------------- the file system


def sparse(path: Path, size: int = 100 * 10**9) -> None:
    """A 100 GB file with no blocks: reading it all would take minutes; the size check must stop it."""
    with path.open("wb") as fh:
        fh.truncate(size)


def long_path(root: Path, total: int = 4200) -> str:
    """Nested 255-byte directories down to a file whose path is over ``total`` bytes; its relative path."""
    parts: list[str] = []
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        while len(str(root)) + sum(len(p) + 1 for p in parts) < total:
            name = f"{len(parts):02d}" + "d" * 253
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
            parts.append(name)
        leaf = "f" * 250 + ".com"
        out = os.open(leaf, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, samples.eicar())
        os.close(out)
        parts.append(leaf)
    finally:
        os.close(fd)
    return "/".join(parts)


@contextlib.contextmanager
def growing(path: Path, chunk: int = 4096, cap: int = 48 * MIB) -> Iterator[None]:
    """Keep appending to ``path`` (up to ``cap`` bytes) while the block runs."""
    stop = threading.Event()
    path.write_bytes(b"log line\n" * 100_000)

    def grow() -> None:
        with path.open("ab") as fh:
            while not stop.wait(0.001) and fh.tell() < cap:
                fh.write(b"x" * (chunk - 1) + b"\n")
                fh.flush()

    writer = threading.Thread(target=grow, name="grow-file")
    writer.start()
    try:
        yield
    finally:
        stop.set()
        writer.join()


# ---------------------------------------------------------------- the table

NOT_CLEAN = frozenset({"unscanned", "error"})


def cases(outside: Path) -> list[Case]:
    """Every case, with its builder; ``outside`` is a file outside the corpus that holds EICAR."""
    return [
        Case(
            "deflate-bomb.zip",
            frozenset({"unscanned"}),
            "100 MB of zeros in ~100 KB",
            limits=frozenset({"CompressionRatio"}),
            build=deflate_bomb,
        ),
        Case(
            "42.zip",
            frozenset({"unscanned"}),
            "16x16x16x16 zips of 8 MiB zero files (512 GiB)",
            limits=frozenset({"CompressionRatio", "MaxScanSize", "MaxFiles", "MaxRecursion"}),
            build=nested_bomb,
        ),
        Case(
            "overlap.zip",
            NOT_CLEAN,
            "Fifield full overlap: 250 entries on one 64 MiB kernel",
            limits=frozenset({"CompressionRatio", "MaxScanSize"}),
            build=overlapping_zip,
        ),
        Case(
            "eicar-20-deep.zip",
            frozenset({"malicious", "unscanned"}),
            "EICAR nested 20 zips deep",
            limits=frozenset({"MaxRecursion"}),
            build=lambda p: p.write_bytes(samples.nested_zip(samples.eicar(), 20)),
        ),
        Case(
            "100k-entries.zip",
            frozenset({"unscanned"}),
            "100,000 members",
            limits=frozenset({"MaxFiles"}),
            build=many_entries,
        ),
        Case(
            "links.tar",
            frozenset({"clean"}),
            "symlink and hardlink to an EICAR file outside: never followed",
            build=lambda p: links_tar(p, outside),
        ),
        Case("loop.pdf", frozenset({"clean"}), "page tree, object stream and xref loops", build=looping_pdf),
        Case(
            "laughs.docx", frozenset({"clean"}), "billion laughs in document.xml: refused", build=laughs_docx
        ),
        Case(
            "sparse-100g.bin",
            frozenset({"unscanned"}),
            "100 GB sparse file",
            limits=frozenset({"MaxFileSize"}),
            build=sparse,
        ),
        Case(
            ESCAPE_NAME,
            frozenset({"malicious"}),
            "EICAR under a name with a newline and terminal escapes",
            build=lambda p: p.write_bytes(samples.eicar()),
        ),
        Case(
            "growing.log",
            frozenset({"clean", "error"}),
            "a file appended to while it is scanned",
            reason="grew while being read",
        ),
    ]


CONTROLS = {
    "control/eicar.com": "malicious",
    "control/letter.txt": "clean",
    "control/contacts.csv": "clean",
    "control/eicar.zip": "malicious",
}


def build_controls(root: Path) -> None:
    """Ordinary files beside the hostile ones: their verdicts must not change."""
    (root / "control").mkdir()
    (root / "control" / "eicar.com").write_bytes(samples.eicar())
    (root / "control" / "letter.txt").write_text("Dear Sir,\nplease find the minutes attached.\n")
    (root / "control" / "contacts.csv").write_text(f"name,email\nJane Roe,{EMAIL}\n")
    (root / "control" / "eicar.zip").write_bytes(samples.nested_zip(samples.eicar(), 2))


def build(root: Path, outside: Path, only: str | None = None) -> list[Case]:
    """Write every case (or just ``only``) under ``root``; return the cases written."""
    outside.write_bytes(samples.eicar())
    chosen = [c for c in cases(outside) if only is None or c.path == only]
    for case in chosen:
        if case.build is not None:
            case.build(root / case.path)
    return chosen
