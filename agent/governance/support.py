"""``endpoint-agent support-bundle --out FILE``: what support needs, checked for personal data first.

The bundle is a tar.gz holding one directory, ``endpoint-agent-support/``:

- ``manifest.json``: the agent version, when the bundle was made, every member's size and SHA-256;
- ``version.json``: agent, Python and YARA-X versions, operating system name, release and machine;
- ``config.json``: every option in force, except that paths, URLs and every key, token and pin
  option read ``"<set>"`` (a list: ``"<N set>"``);
- ``status.json``: the running service's status from its control socket, or why none answered;
- ``counts.json``: outbox, cache and persistent counters of ``agent.db`` (read-only) and the
  installed rule bundle versions;
- ``logs/log-N.txt``: the newest files under ``<state dir>/logs/`` (the agent logs to standard
  error; rotated logs or a saved journal go there) and files given with ``--log``, the last 1 MiB
  of each, renamed (their names are not kept).

Never included: ``master.key``, ``upstream.token``, ``agent.db``, rules, the names of log files.

**The final check** runs over every member (its name and its text) before anything is written: the
agent's own personal-data detectors (:func:`agent.classify.detectors.detect`), absolute and
home-relative paths, URLs, the user's name, home directory and host name, and this install's secrets
(the master secret raw, hex or base64, and the upstream token). If anything is found the bundle is
**not written** and :class:`BundleRefused` names each kind and the member it was in, never the
value. Tar entries carry no owner name or id and a fixed mode; the gzip header carries no file name.
The file is created 0600 beside its destination and renamed into place.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import getpass
import gzip
import hashlib
import importlib.metadata
import io
import json
import os
import platform
import re
import socket
import sqlite3
import stat
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent import __version__
from agent.classify.detectors import detect
from agent.config import OPTIONS, Config
from agent.errors import AgentError
from agent.outbox import Store

__all__ = [
    "ROOT",
    "BundleRefused",
    "Finding",
    "Written",
    "check",
    "collect",
    "local_literals",
    "write_bundle",
]

ROOT = "endpoint-agent-support"
_LOG_DIR = "logs"  # agent.governance.retention.LOG_DIR
_MAX_LOGS = 10
_LOG_TAIL = 1 << 20
_SECRETISH = ("token", "key", "secret", "password", "pin")
_ARCHIVES = (".gz", ".tgz", ".zip", ".xz", ".bz2")
# An absolute or home-relative path (POSIX, Windows drive, UNC; JSON-escaped backslashes too): a
# separator not preceded by a word character, '.', '~', '-' or another separator, then a component.
_PATH = re.compile(r"(?<![\w./\\~-])(?:~|[A-Za-z]:)?[/\\]+[^\s/\\\"'<>|:;,()\[\]{}]+")
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")  # a URL's host or path may name someone


@dataclass(frozen=True, slots=True)
class Finding:
    """Something personal or secret found in a member: its kind, never its value."""

    kind: str
    member: str


class BundleRefused(AgentError):
    """The bundle would hold personal data or a secret; nothing was written."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings = tuple(findings)
        found = "; ".join(sorted({f"{f.kind} in {f.member}" for f in self.findings}))
        super().__init__(f"the support bundle was not written: it would contain {found}")


@dataclass(frozen=True, slots=True)
class Written:
    """A bundle that was written: where, its members and its size in bytes."""

    path: Path
    members: tuple[str, ...]
    size: int


def local_literals() -> dict[str, str]:
    """This machine's user name, home directory and host name, by kind (values of 3+ characters)."""
    found: dict[str, str] = {}
    with contextlib.suppress(Exception):
        found["user name"] = getpass.getuser()
    with contextlib.suppress(OSError):
        found["host name"] = socket.gethostname()
    with contextlib.suppress(RuntimeError):
        found["home directory"] = str(Path.home())
    return {kind: value for kind, value in found.items() if len(value) >= 3 and value != "/"}


def collect(
    cfg: Config, extra_logs: Sequence[Path] = (), status: Mapping[str, Any] | None = None
) -> dict[str, bytes]:
    """The bundle's members by name (without the manifest); ``status`` defaults to asking the service."""
    members = {
        "version.json": _json(_versions()),
        "config.json": _json(_config_doc(cfg)),
        "status.json": _json(dict(status) if status is not None else _status(cfg)),
        "counts.json": _json(_counts(cfg)),
    }
    for index, data in enumerate(_logs(cfg.state_dir / _LOG_DIR, extra_logs), start=1):
        members[f"logs/log-{index}.txt"] = data
    return members


def check(
    members: Mapping[str, bytes], literals: Mapping[str, str] | None = None, secrets: Sequence[bytes] = ()
) -> list[Finding]:
    """Everything personal or secret in ``members`` (names and contents), by kind and member."""
    words = local_literals() if literals is None else literals
    patterns = {kind: _word(value) for kind, value in words.items() if value}
    forms = [f for secret in secrets for f in _secret_forms(secret)]
    findings: list[Finding] = []
    for name, data in members.items():
        text = f"{name}\n" + data.decode("utf-8", "replace")
        findings.extend(Finding(kind.replace("_", " "), name) for kind in detect(text))
        findings.extend(
            Finding(kind, name) for kind, found in (("path", _PATH), ("url", _URL)) if found.search(text)
        )
        findings.extend(Finding(kind, name) for kind, pattern in patterns.items() if pattern.search(text))
        if any(form in data for form in forms):
            findings.append(Finding("secret", name))
    return findings


def write_bundle(
    cfg: Config,
    out: Path,
    extra_logs: Sequence[Path] = (),
    literals: Mapping[str, str] | None = None,
    status: Mapping[str, Any] | None = None,
) -> Written:
    """Collect, check and write the bundle to ``out``; :class:`BundleRefused` if anything is found."""
    members = collect(cfg, extra_logs, status)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    members = {"manifest.json": _json(_manifest(members, now)), **members}
    findings = check(members, literals, _install_secrets(cfg))
    if findings:
        raise BundleRefused(findings)
    archive = _archive(members, int(now.timestamp()))
    _write_private(out, archive)
    return Written(out, tuple(members), len(archive))


# ---------------------------------------------------------------------- members


def _json(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, indent=1, sort_keys=True, default=str).encode() + b"\n"


def _versions() -> dict[str, str]:
    try:
        yara_x = importlib.metadata.version("yara-x")
    except importlib.metadata.PackageNotFoundError:
        yara_x = "not installed"
    return {
        "agent": __version__,
        "python": platform.python_version(),
        "yara_x": yara_x,
        "os": platform.system(),
        "os_release": platform.release(),
        "machine": platform.machine(),
    }


def _config_doc(cfg: Config) -> dict[str, dict[str, object]]:
    doc: dict[str, dict[str, object]] = {}
    for option in OPTIONS:
        value = getattr(getattr(cfg, option.section), option.name)
        doc.setdefault(option.section, {})[option.name] = _safe_value(option.name, value)
    return doc


def _safe_value(name: str, value: object) -> object:
    if isinstance(value, bool | int | float) or not value:
        return list(value) if isinstance(value, tuple) else value
    items = [str(v) for v in value] if isinstance(value, tuple) else [str(value)]
    located = any("/" in v or "\\" in v or v.startswith("~") for v in items)
    if located or any(word in name for word in _SECRETISH):
        return f"<{len(items)} set>" if isinstance(value, tuple) else "<set>"
    return items if isinstance(value, tuple) else value


def _status(cfg: Config) -> dict[str, Any]:
    from agent.control import query  # noqa: PLC0415 - only this command asks the service
    from agent.service import control_path  # noqa: PLC0415

    try:
        return query(control_path(cfg), "STATUS", timeout=2.0)
    except AgentError as exc:
        return {"running": False, "reason": str(exc)}


def _counts(cfg: Config) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    db = cfg.state_dir / "agent.db"
    if db.is_file():
        try:
            doc["store"] = Store.counts(db)
            conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=2.0)
            try:
                doc["counters"] = dict(conn.execute("SELECT name, value FROM counters ORDER BY name"))
            finally:
                conn.close()
        except sqlite3.Error as exc:
            doc["store_error"] = type(exc).__name__
    from agent.updates.install import status  # noqa: PLC0415 - keeps the module light

    try:
        doc["rules"] = dataclasses.asdict(status(cfg.state_dir))
    except (OSError, AgentError) as exc:
        doc["rules_error"] = type(exc).__name__
    return doc


def _logs(log_dir: Path, extra: Sequence[Path]) -> list[bytes]:
    found: list[tuple[float, Path]] = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(log_dir):
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and not entry.name.endswith(_ARCHIVES):
                found.append((st.st_mtime, Path(entry.path)))
    newest = [path for _, path in sorted(found, reverse=True)[:_MAX_LOGS]]
    return [_tail(path) for path in [*newest, *extra]]


def _tail(path: Path) -> bytes:
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - _LOG_TAIL))
            return fh.read(_LOG_TAIL)
    except OSError as exc:
        raise AgentError(f"a log file cannot be read: {exc.strerror}") from exc


def _manifest(members: Mapping[str, bytes], now: dt.datetime) -> dict[str, Any]:
    listed = [
        {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        for name, data in members.items()
    ]
    return {
        "format": 1,
        "agent": __version__,
        "created": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "members": listed,
    }


# ---------------------------------------------------------------------- checks and writing


def _word(value: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9_-]){re.escape(value)}(?![A-Za-z0-9_-])", re.IGNORECASE)


def _install_secrets(cfg: Config) -> list[bytes]:
    from agent.upstream.enroll import token_path  # noqa: PLC0415 - only the path; no client is built

    found: list[bytes] = []
    for path in (cfg.state_dir / "master.key", token_path(cfg)):
        with contextlib.suppress(OSError):
            data = path.read_bytes().strip()
            if len(data) >= 16:
                found.append(data)
    return found


def _secret_forms(secret: bytes) -> list[bytes]:
    forms = {secret, secret.hex().encode(), secret.hex().upper().encode()}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        forms.add(encode(secret).rstrip(b"=")[:-2])  # the last characters depend on what follows
    return [f for f in forms if len(f) >= 16]


def _archive(members: Mapping[str, bytes], mtime: int) -> bytes:
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as packed,
        tarfile.open(fileobj=packed, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        for name, data in members.items():
            info = tarfile.TarInfo(f"{ROOT}/{name}")
            info.size, info.mode, info.mtime = len(data), 0o600, mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _write_private(out: Path, data: bytes) -> None:
    directory = out.parent if str(out.parent) else Path()
    try:
        fd, tmp = tempfile.mkstemp(prefix=".support-bundle-", dir=directory)
    except OSError as exc:
        raise AgentError(f"cannot write the support bundle: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(out)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise AgentError(f"cannot write the support bundle: {exc.strerror}") from exc
