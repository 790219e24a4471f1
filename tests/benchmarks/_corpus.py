"""Deterministic benchmark corpus and rule sets for ``bench_scan.py``.

Everything comes from one seeded ``random.Random``: the same seed and counts give byte-identical
files and rules. Bulk bytes are sliced out of pools built once (64 MiB of random bytes, a few MiB
each of prose, logs, CSV, JSON and code), so generation costs little more than the disk writes.

The EICAR test string is assembled at run time from parts; no file in the repository holds it whole.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import string
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Corpus", "RuleSets", "build_corpora", "eicar"]

KIB = 1024
MIB = 1024 * KIB
_EICAR_PARTS = ("X5O!P%@AP[4\\PZX54(P^)7CC)7}$", "EICAR-STANDARD-ANTIVIRUS-", "TEST-FILE!$H+H*")
_ZIP_DATE = (2024, 1, 1, 0, 0, 0)
_BIN_POOL = 64 * MIB
_TEXT_POOL = 3 * MIB
_N_RULES = 1000
_N_RANDOM_HASHES = 10_000
_RULE_FILES = 4
# Share of the small corpus per category; the rest of the logic keys on these names.
_SMALL_MIX = (("binary", 0.40), ("text", 0.30), ("code", 0.15), ("personal", 0.10), ("zip", 0.05))

_FALLBACK_WORDS = (
    "account", "action", "balance", "batch", "block", "branch", "build", "cache", "channel", "check",
    "client", "config", "count", "cycle", "data", "delta", "design", "device", "display", "domain",
    "driver", "entry", "error", "event", "field", "filter", "format", "frame", "function", "group",
    "handle", "header", "history", "image", "index", "input", "issue", "item", "label", "layer",
    "level", "limit", "manager", "market", "member", "memory", "message", "method", "metric", "model",
    "module", "monitor", "network", "node", "number", "object", "offset", "option", "order", "output",
    "package", "panel", "pattern", "policy", "pool", "power", "price", "process", "product", "profile",
    "queue", "range", "record", "region", "release", "report", "request", "resource", "result", "review",
    "route", "sample", "schema", "score", "section", "segment", "server", "service", "session", "signal",
    "source", "stage", "status", "storage", "stream", "system", "table", "target", "thread", "token",
)  # fmt: skip


def eicar() -> bytes:
    """The 68-byte EICAR test file."""
    return "".join(_EICAR_PARTS).encode("ascii")


@dataclass(slots=True)
class Corpus:
    """A generated tree: its root, totals, and the files every scanner should flag."""

    name: str
    root: Path
    files: int = 0
    bytes: int = 0
    by_category: dict[str, int] = field(default_factory=dict)
    planted: set[str] = field(default_factory=set)  # paths relative to root
    category_of: dict[str, str] = field(default_factory=dict)  # path relative to root -> category

    def add(self, rel: str, size: int, category: str) -> None:
        """Count one written file."""
        self.category_of[rel] = category
        self.files += 1
        self.bytes += size
        self.by_category[category] = self.by_category.get(category, 0) + 1


@dataclass(frozen=True, slots=True)
class RuleSets:
    """The same signatures in three dialects: endpoint-agent, classic yara, ClamAV."""

    agent_dir: Path  # *.yar + bench.hsb, for ``endpoint-agent scan --rules``
    yara_file: Path  # every rule in one file, for ``yara``
    clam_dir: Path  # bench.ndb + the same bench.hsb, for ``clamscan -d``
    yara_rules: int
    hash_entries: int


# ---------------------------------------------------------------- pools


class _Pools:
    """Byte pools that files are sliced from, plus personal records."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.words = _word_list()
        self.binary = b"".join(rng.randbytes(MIB) for _ in range(_BIN_POOL // MIB))
        self.prose = self._fill(self._prose_paragraph)
        self.log = self._fill(self._log_lines)
        self.csv = self._fill(self._csv_rows)
        self.json = self._fill(self._json_lines)
        self.code = {ext: self._fill(make) for ext, make in _code_makers(self).items()}
        self.people = _people(rng, 1500)

    def _fill(self, make: Callable[[], str]) -> bytes:
        parts: list[str] = []
        size = 0
        while size < _TEXT_POOL:
            chunk = make()
            parts.append(chunk)
            size += len(chunk)
        return "".join(parts).encode()

    def sentence(self) -> str:
        words = self.rng.choices(self.words, k=self.rng.randint(6, 18))
        return " ".join(words).capitalize() + self.rng.choice(".....?!")

    def _prose_paragraph(self) -> str:
        return " ".join(self.sentence() for _ in range(self.rng.randint(2, 7))) + "\n\n"

    def _log_lines(self) -> str:
        r = self.rng
        lines = []
        for _ in range(64):
            ts = f"2024-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}.{r.randint(0, 999):03d}Z"
            level = r.choices(("DEBUG", "INFO", "WARN", "ERROR"), weights=(3, 10, 2, 1))[0]
            comp = r.choice(self.words)
            msg = " ".join(r.choices(self.words, k=r.randint(3, 9)))
            lines.append(
                f"{ts} {level:<5} [{comp}-{r.randint(1, 8)}] {msg} req={r.randbytes(6).hex()} "
                f"status={r.choice((200, 200, 200, 201, 204, 304, 404, 500))} ms={r.randint(1, 900)}\n"
            )
        return "".join(lines)

    def _csv_rows(self) -> str:
        r = self.rng
        return "".join(
            f"SKU-{r.randbytes(3).hex().upper()},{r.choice(self.words)} {r.choice(self.words)},"
            f"{r.choice(self.words)},{r.randint(0, 500)},{r.randint(1, 999)}.{r.randint(0, 99):02d},"
            f"{r.choice(('in_stock', 'backorder', 'discontinued'))}\n"
            for _ in range(64)
        )

    def _json_lines(self) -> str:
        r = self.rng
        return "".join(
            json.dumps(
                {
                    "event": r.choice(self.words),
                    "component": f"{r.choice(self.words)}-{r.choice(self.words)}",
                    "count": r.randint(0, 10_000),
                    "ratio": round(r.random(), 4),
                    "tags": r.choices(self.words, k=r.randint(1, 4)),
                    "enabled": r.random() < 0.5,
                }
            )
            + "\n"
            for _ in range(32)
        )

    def text(self, pool: bytes, size: int) -> bytes:
        """A line-aligned slice of about ``size`` bytes (at least one line)."""
        start = self.rng.randrange(len(pool) - size - 2 * KIB)
        start = pool.index(b"\n", start) + 1
        end = pool.rfind(b"\n", start, start + size) + 1
        return pool[start : max(end, pool.index(b"\n", start) + 1)]

    def random_bytes(self, size: int) -> bytes:
        start = self.rng.randrange(len(self.binary) - size)
        return self.binary[start : start + size]


def _word_list() -> list[str]:
    try:
        from faker.providers.lorem.en_US import Provider

        words = [w for w in Provider.word_list if w.isalpha()]
    except ImportError:
        words = list(_FALLBACK_WORDS)
    return words


def _people(rng: random.Random, count: int) -> list[dict[str, str]]:
    """Fake people (Faker when available): name, email, phone, street, city."""
    try:
        from faker import Faker

        fake = Faker("en_US")
        fake.seed_instance(rng.randrange(1 << 30))
        return [
            {
                "name": fake.name(),
                "email": fake.email(),
                "phone": fake.phone_number(),
                "street": fake.street_address(),
                "city": fake.city(),
                "birthdate": fake.date_of_birth(minimum_age=18, maximum_age=90).isoformat(),
            }
            for _ in range(count)
        ]
    except ImportError:
        first = ("James", "Mary", "Robert", "Linda", "Michael", "Sarah", "David", "Karen", "Daniel", "Emma")
        last = ("Smith", "Johnson", "Brown", "Miller", "Davis", "Wilson", "Moore", "Taylor", "Clark", "Lewis")
        people = []
        for _ in range(count):
            f, la = rng.choice(first), rng.choice(last)
            people.append(
                {
                    "name": f"{f} {la}",
                    "email": f"{f.lower()}.{la.lower()}{rng.randint(1, 99)}@example.com",
                    "phone": f"+1 212-{rng.randint(200, 999)}-{rng.randint(1000, 9999)}",
                    "street": f"{rng.randint(1, 999)} Main Street",
                    "city": "Springfield",
                    "birthdate": f"19{rng.randint(40, 99)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                }
            )
        return people


def _code_makers(p: _Pools) -> dict[str, Callable[[], str]]:
    r = p.rng

    def ident() -> str:
        return "_".join(r.choices(p.words, k=r.randint(1, 3)))

    def py() -> str:
        a, b, name = ident(), ident(), ident()
        return (
            f"def {name}({a}, {b}=None):\n"
            f'    """{p.sentence()}"""\n'
            f"    if {b} is None:\n        {b} = {r.randint(0, 99)}\n"
            f"    result = [{a} * i for i in range({b})]\n"
            f"    return sum(result) / max(len(result), 1)\n\n\n"
        )

    def js() -> str:
        a, name = ident(), ident()
        return (
            f"// {p.sentence()}\nexport function {name}({a}) {{\n"
            f"  const out = {a}.filter((x) => x > {r.randint(0, 50)}).map((x) => x * 2);\n"
            f'  return out.length ? out : ["{r.choice(p.words)}"];\n}}\n\n'
        )

    def sh() -> str:
        var, fn = ident().upper(), ident()
        return (
            f"# {p.sentence()}\n{fn}() {{\n  local {var}=${{1:-{r.choice(p.words)}}}\n"
            f'  for f in "$@"; do\n    echo "{r.choice(p.words)}: $f" >> "${{LOG_DIR}}/{fn}.log"\n'
            f'  done\n  test -n "${var}" || return {r.randint(1, 9)}\n}}\n\n'
        )

    def c() -> str:
        a, name = ident(), ident()
        return (
            f"/* {p.sentence()} */\nstatic int {name}(const int *{a}, size_t n)\n{{\n"
            f"    int acc = {r.randint(0, 9)};\n    for (size_t i = 0; i < n; i++)\n"
            f"        acc += {a}[i] % {r.randint(2, 97)};\n    return acc;\n}}\n\n"
        )

    def go() -> str:
        a, name = ident(), ident().title().replace("_", "")
        return (
            f"// {name} {p.sentence().lower()}\nfunc {name}({a} []int) (int, error) {{\n"
            f'\tif len({a}) == 0 {{\n\t\treturn 0, errors.New("{r.choice(p.words)}")\n\t}}\n'
            f"\treturn {a}[0] + {r.randint(1, 99)}, nil\n}}\n\n"
        )

    return {"py": py, "js": js, "sh": sh, "c": c, "go": go}


# ---------------------------------------------------------------- file contents


def _personal_text(p: _Pools, size: int) -> tuple[bytes, str]:
    """Text with some personal data mixed into ordinary content; returns (content, extension)."""
    r = p.rng
    style = r.choice(("csv", "prose", "json", "log"))
    out: list[bytes] = []
    total = 0
    if style == "csv":
        out.append(b"id,name,email,phone,street,city,birthdate\n")
        while total < size:
            person = r.choice(p.people)
            row = f"{r.randint(1, 99999)},{person['name']},{person['email']},{person['phone']},"
            row += f'"{person["street"]}",{person["city"]},{person["birthdate"]}\n'
            out.append(row.encode())
            total += len(row)
        return _trim(b"".join(out), size), "csv"
    filler = {"prose": p.prose, "json": p.json, "log": p.log}[style]
    while total < size:
        chunk = p.text(filler, r.randint(1 * KIB, 8 * KIB))
        person = r.choice(p.people)
        if style == "json":
            line = json.dumps({"user": person["name"], "email": person["email"], "phone": person["phone"]})
        elif style == "log":
            line = f"2024-05-0{r.randint(1, 9)}T10:00:00Z INFO [auth] login ok user={person['email']}"
        else:
            line = f"Please contact {person['name']} at {person['email']} or {person['phone']}."
        out.extend((chunk, line.encode(), b"\n"))
        total += len(chunk) + len(line) + 1
    ext = {"prose": "txt", "json": "json", "log": "log"}[style]
    return _trim(b"".join(out), size), ext


def _trim(data: bytes, size: int) -> bytes:
    """Cut ``data`` to at most ``size`` bytes at a line end (keeping at least one line)."""
    if len(data) <= size:
        return data
    end = data.rfind(b"\n", 0, size) + 1
    return data[: end or size]


def _text(p: _Pools, size: int) -> tuple[bytes, str]:
    pool, ext = p.rng.choice(
        ((p.prose, "txt"), (p.prose, "md"), (p.log, "log"), (p.csv, "csv"), (p.json, "json"))
    )
    data = p.text(pool, size)
    if ext == "csv":
        data = b"sku,name,category,qty,price,status\n" + data
    return data, ext


def _code(p: _Pools, size: int) -> tuple[bytes, str]:
    ext = p.rng.choice(tuple(p.code))
    header = {"py": b"#!/usr/bin/env python3\n", "sh": b"#!/bin/sh\nset -eu\n"}.get(ext, b"")
    return header + p.text(p.code[ext], size), ext


def _zip(p: _Pools, size: int, extra: dict[str, bytes] | None = None) -> bytes:
    r = p.rng
    n = r.randint(2, 5)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(n):
            part = max(256, size // n)
            kind = r.choice(("text", "text", "code", "binary", "personal"))
            if kind == "binary":
                data, ext = p.random_bytes(part // 3), "bin"
            elif kind == "code":
                data, ext = _code(p, part * 3)
            elif kind == "personal":
                data, ext = _personal_text(p, part * 3)
            else:
                data, ext = _text(p, part * 3)
            _zip_add(zf, f"{r.choice(p.words)}_{i}.{ext}", data)
        for name, data in (extra or {}).items():
            _zip_add(zf, name, data)
    return buf.getvalue()


def _zip_add(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def _plant_text(data: bytes, needle: bytes, rng: random.Random) -> bytes:
    cut = data.find(b"\n", rng.randrange(max(1, len(data)))) + 1 or len(data)
    return data[:cut] + b"ref " + needle + b"\n" + data[cut:]


def _plant_binary(data: bytes, needle: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(max(1, len(data) - len(needle)))
    return data[:at] + needle + data[at + len(needle) :]


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


# ---------------------------------------------------------------- corpora


def _dirs(root: Path, rng: random.Random, words: list[str]) -> list[Path]:
    """About 200 nested directories: 8 top, 5 under each, 4 under each of those (208)."""
    dirs: list[Path] = []
    for a in range(8):
        top = root / f"{rng.choice(words)}_{a}"
        dirs.append(top)
        for b in range(5):
            mid = top / f"{rng.choice(words)}_{b}"
            dirs.append(mid)
            dirs.extend(mid / f"{rng.choice(words)}_{c}" for c in range(4))
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    return dirs


@dataclass(slots=True)
class _Plan:
    category: str
    size: int
    plant: bytes | None = None  # a rule string to plant
    eicar: bool = False


def _small_corpus(root: Path, n: int, p: _Pools, needles: list[tuple[bytes, bool]]) -> Corpus:
    r = p.rng
    corpus = Corpus("small", root)
    dirs = _dirs(root, r, p.words)
    cats = [c for c, _ in _SMALL_MIX]
    plans = [
        _Plan(cat, r.randint(1 * KIB, 64 * KIB))
        for cat in r.choices(cats, weights=[w for _, w in _SMALL_MIX], k=n)
    ]
    # Plant: EICAR as standalone files, rule strings (text ones in text/code, hex ones in binary).
    order = list(range(n))
    r.shuffle(order)
    picks = iter(order)
    for _ in range(max(1, n // 2500)):
        plans[next(picks)].eicar = True
    want = {"text": [i for i in order if plans[i].category in ("text", "code")]}
    want["binary"] = [i for i in order if plans[i].category == "binary"]
    taken = {i for i in range(n) if plans[i].eicar}
    for needle, is_text in needles:
        pool = want["text" if is_text else "binary"]
        for _ in range(2):
            while pool and pool[-1] in taken:
                pool.pop()
            if pool:
                idx = pool.pop()
                plans[idx].plant = needle
                taken.add(idx)
    zip_specials = [i for i in order if plans[i].category == "zip" and i not in taken][:2]
    for i, plan in enumerate(plans):
        extra: dict[str, bytes] = {}
        if i in zip_specials:
            extra = (
                {"tools/eicar.com": eicar()}
                if i == zip_specials[0]
                else {"notes.txt": b"ref " + needles[0][0]}
            )
        data, ext, planted = _small_file(p, plan, extra)
        rel_dir = r.choice(dirs)
        path = rel_dir / f"{r.choice(p.words)}_{i:05d}.{ext}"
        _write(path, data)
        rel = path.relative_to(root).as_posix()
        corpus.add(rel, len(data), "eicar" if plan.eicar else plan.category)
        if planted or extra:
            corpus.planted.add(rel)
    return corpus


def _small_file(p: _Pools, plan: _Plan, extra: dict[str, bytes]) -> tuple[bytes, str, bool]:
    if plan.eicar:
        return eicar(), "com", True
    cat, size, r = plan.category, plan.size, p.rng
    if cat == "binary":
        data, ext = p.random_bytes(size), r.choice(("bin", "dat", "pak", "cache", "db", "idx"))
    elif cat == "text":
        data, ext = _text(p, size)
    elif cat == "code":
        data, ext = _code(p, size)
    elif cat == "personal":
        data, ext = _personal_text(p, size)
    else:
        return _zip(p, size, extra), "zip", False
    if plan.plant is not None:
        plant = _plant_binary if cat == "binary" else _plant_text
        data = plant(data, plan.plant, r)
    return data, ext, plan.plant is not None


def _large_corpus(root: Path, n: int, p: _Pools, needles: list[tuple[bytes, bool]]) -> Corpus:
    r = p.rng
    corpus = Corpus("large", root)
    dirs = [root / name for name in ("images", "backups", "vm", "logs")]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    n_text = max(1, n // 8)  # a few big logs/text dumps, the rest binary
    text_idx = set(range(0, n, max(1, n // n_text))[:n_text])
    hex_needles = [nd for nd, is_text in needles if not is_text][:2]
    text_needles = [nd for nd, is_text in needles if is_text][:1]
    for i in range(n):
        size = r.randint(16 * MIB, 64 * MIB)
        is_text = i in text_idx
        if is_text:
            path = dirs[3] / f"{r.choice(p.words)}_{i:02d}.{r.choice(('log', 'txt', 'csv'))}"
            plant = text_needles.pop() if text_needles else None
        else:
            path = (
                r.choice(dirs[:3]) / f"{r.choice(p.words)}_{i:02d}.{r.choice(('img', 'bak', 'vmdk', 'bin'))}"
            )
            plant = hex_needles.pop() if hex_needles else None
        written = _write_large(path, size, p, is_text, plant)
        rel = path.relative_to(root).as_posix()
        corpus.add(rel, written, "text" if is_text else "binary")
        if plant is not None:
            corpus.planted.add(rel)
    return corpus


def _write_large(path: Path, size: int, p: _Pools, is_text: bool, plant: bytes | None) -> int:
    """Write ``size`` bytes (about, for text) in chunks sliced from the pools; return the bytes written."""
    r = p.rng
    plant_at = r.randrange(size // 4, size * 3 // 4) if plant is not None else -1
    written = 0
    with path.open("wb", buffering=0) as fh:
        while written < size:
            want = min(4 * MIB, size - written)
            if is_text:
                chunk = b"".join(p.text(p.log, 64 * KIB) for _ in range(max(1, want // (64 * KIB))))
            else:
                chunk = p.random_bytes(want)
            if written <= plant_at < written + len(chunk) and plant is not None:
                chunk = _plant_text(chunk, plant, r) if is_text else _plant_binary(chunk, plant, r)
            fh.write(chunk)
            written += len(chunk)
    return written


# ---------------------------------------------------------------- rules


def _needles(rng: random.Random) -> list[tuple[bytes, bool]]:
    """One pattern per rule: (bytes, is_text). Half printable ASCII, half random bytes."""
    alphabet = string.ascii_letters + string.digits
    out = []
    for i in range(_N_RULES):
        k = rng.randint(8, 16)
        if i % 2 == 0:
            out.append(("".join(rng.choices(alphabet, k=k)).encode(), True))
        else:
            out.append((rng.randbytes(k), False))
    return out


def _yara_rule(i: int, needle: bytes, is_text: bool) -> str:
    value = f'"{needle.decode()}"' if is_text else "{ " + " ".join(f"{b:02X}" for b in needle) + " }"
    return (
        f'rule bench_{i}\n{{\n    meta:\n        severity = "high"\n'
        f'        description = "benchmark string rule {i}"\n'
        f"    strings:\n        $a = {value}\n    condition:\n        $a\n}}\n\n"
    )


def _write_rules(
    out: Path, needles: list[tuple[bytes, bool]], hashed: list[tuple[str, int, bool]], rng: random.Random
) -> RuleSets:
    agent_dir, clam_dir = out / "agent", out / "clamav"
    agent_dir.mkdir(parents=True, exist_ok=True)
    clam_dir.mkdir(parents=True, exist_ok=True)
    rules = [_yara_rule(i, nd, is_text) for i, (nd, is_text) in enumerate(needles)]
    eicar_hex = " ".join(f"{b:02X}" for b in eicar())
    eicar_rule = (
        'rule bench_eicar\n{\n    meta:\n        severity = "high"\n'
        '        description = "EICAR test file"\n'
        f"    strings:\n        $a = {{ {eicar_hex} }}\n    condition:\n        $a at 0 and filesize <= 128\n}}\n\n"
    )
    per_file = -(-len(rules) // _RULE_FILES)
    texts = ["".join(rules[k : k + per_file]) for k in range(0, len(rules), per_file)]
    texts.append(eicar_rule)
    for k, text in enumerate(texts):
        (agent_dir / f"bench_{k}.yar").write_text(text)
    yara_file = out / "all.yar"
    yara_file.write_text("".join(texts))
    # Hash list: random digests with random sizes, then real corpus files and EICAR.
    lines = [
        f"{rng.randbytes(32).hex()}:{rng.randint(1, 64 * MIB)}:Bench.Hash.Random{j}"
        for j in range(_N_RANDOM_HASHES)
    ]
    for j, (digest, size, any_size) in enumerate(hashed):
        # ClamAV accepts '*' only with a functionality level; endpoint-agent ignores the 4th field.
        lines.append(
            f"{digest}:*:Bench.Hash.Corpus{j}:73" if any_size else f"{digest}:{size}:Bench.Hash.Corpus{j}"
        )
    lines.append(f"{hashlib.sha256(eicar()).hexdigest()}:{len(eicar())}:Bench.Hash.Eicar")
    hsb = "\n".join(lines) + "\n"
    (agent_dir / "bench.hsb").write_text(hsb)
    (clam_dir / "bench.hsb").write_text(hsb)
    ndb = [f"bench_{i}:0:*:{nd.hex()}" for i, (nd, _) in enumerate(needles)]
    ndb.append(f"bench_eicar:0:0:{eicar().hex()}")
    (clam_dir / "bench.ndb").write_text("\n".join(ndb) + "\n")
    return RuleSets(agent_dir, yara_file, clam_dir, len(rules) + 1, len(lines))


def _hash_targets(corpus: Corpus, rng: random.Random, count: int) -> list[tuple[str, int, bool]]:
    """Pick ``count`` unplanted files of ``corpus``, mark them planted, return (sha256, size, any_size)."""
    files = sorted(p.relative_to(corpus.root).as_posix() for p in corpus.root.rglob("*") if p.is_file())
    candidates = [f for f in files if f not in corpus.planted]
    out = []
    for k, rel in enumerate(rng.sample(candidates, min(count, len(candidates)))):
        data = (corpus.root / rel).read_bytes()
        out.append((hashlib.sha256(data).hexdigest(), len(data), k % 4 == 3))
        corpus.planted.add(rel)
    return out


def build_corpora(out: Path, n_small: int, n_large: int, seed: int) -> tuple[Corpus, Corpus, RuleSets]:
    """Generate ``out/small``, ``out/large`` and ``out/rules``; return what was made."""
    rng = random.Random(seed)
    pools = _Pools(rng)
    needles = _needles(rng)
    # Plant the strings of 24 rules (12 text, 12 hex) in small files, a few in large ones.
    text_rules = [nd for nd in needles if nd[1]][:12]
    hex_rules = [nd for nd in needles if not nd[1]][:12]
    small = _small_corpus(out / "small", n_small, pools, text_rules + hex_rules)
    large = _large_corpus(out / "large", n_large, pools, [*needles[100:102], *needles[201:204]])
    hashed = _hash_targets(small, rng, 16) + _hash_targets(large, rng, 2 if n_large >= 4 else 0)
    rules = _write_rules(out / "rules", needles, hashed, rng)
    return small, large, rules
