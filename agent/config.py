"""Configuration: one table of options, one TOML file, unknown keys are errors.

The table below is the only place an option is declared. ``load()`` reads ``agent.toml`` against it,
``example()`` and ``show()`` render it. Engine defaults come from :mod:`agent.engine.limits`, so the
CLI and the engine cannot drift apart.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs

from agent.engine.limits import DEFAULT_LIMITS, ScanLimits
from agent.engine.sandbox import SandboxSettings
from agent.errors import ConfigError

__all__ = [
    "OPTIONS",
    "Config",
    "LogConfig",
    "Option",
    "PrivacyConfig",
    "ScanConfig",
    "bundled_rules_dir",
    "example",
    "home_dirs",
    "load",
    "show",
]

_HOME_ENV = "ENDPOINT_AGENT_HOME"
_JOBS_PER_CORE = 4
_PERIODS = ("month", "week", "day")
_LOG_FORMATS = ("auto", "json", "console")
_LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True, slots=True)
class Option:
    """One configuration option: where it lives, its type, default and meaning."""

    section: str
    name: str
    type: type
    default: object
    doc: str
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ScanConfig:
    """``[scan]``: how on-demand and background scans run."""

    jobs: int = 0
    rules_dir: str = ""
    cache: bool = True
    inflight_bytes: int = 128 << 20


@dataclass(frozen=True, slots=True)
class PrivacyConfig:
    """``[privacy]``: pseudonym rotation and the minimization policy file."""

    pseudonym_period: str = "month"
    policy_file: str = ""
    purposes_file: str = ""


@dataclass(frozen=True, slots=True)
class LogConfig:
    """``[log]``: level and format of the structured log on standard error."""

    level: str = "info"
    format: str = "auto"


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """``[service]``: how ``endpoint-agent run`` behaves on the machine."""

    control_socket: str = ""
    nice: int = 10
    cpu_budget: float = 0.25
    worker_max_rss: int = 300 << 20
    worker_idle_retire: float = 60.0
    defer_on_battery: bool = True
    defer_when_busy: bool = True
    stop_timeout: float = 8.0


@dataclass(frozen=True, slots=True)
class WatchConfig:
    """``[watch]``: on-access scanning of files as they change, and the background sweep."""

    enabled: bool = True
    roots: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    exclude_extensions: tuple[str, ...] = (".part", ".crdownload", ".swp")
    max_size: int = 0
    settle: float = 0.5
    queue_max: int = 100_000
    sweep_interval: float = 86_400.0


@dataclass(frozen=True, slots=True)
class ProgramsConfig:
    """``[programs]``: scanning the executable image of every new process."""

    enabled: bool = True
    interval: float = 2.0


@dataclass(frozen=True, slots=True)
class ClamdConfig:
    """``[clamd]``: the clamd-compatible socket for other components' data streams."""

    enabled: bool = True
    socket: str = ""
    socket_mode: int = 0o660
    tcp_port: int = 0
    stream_max_length: int = 100 << 20
    max_connections: int = 128
    idle_timeout: float = 30.0
    read_timeout: float = 120.0


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """``[upstream]``: the security cloud that receives minimized verdicts and answers lookups."""

    url: str = ""
    ca_file: str = ""
    pin_sha256: tuple[str, ...] = ()
    token_file: str = ""
    prefix_key: str = ""
    batch_max_records: int = 500
    batch_max_bytes: int = 256 << 10
    flush_interval: float = 10.0
    timeout: float = 10.0
    max_outbox_records: int = 100_000
    max_outbox_age: float = 30 * 86_400.0
    reputation_interval: float = 3_600.0


@dataclass(frozen=True, slots=True)
class UpdatesConfig:
    """``[updates]``: signed rule bundles from the security cloud."""

    enabled: bool = True
    pinned_keys: tuple[str, ...] = ()
    max_age_days: int = 14
    poll_interval: float = 21_600.0
    poll_jitter: float = 3_600.0


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    """``[retention]``: how long each local store keeps what it holds (storage limitation)."""

    history_days: int = 90
    cache_days: int = 30
    outbox_days: int = 30
    sent_log_days: int = 365
    quarantine_days: int = 30
    logs_days: int = 14
    purge_interval: float = 3_600.0


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration, plus the directories it was resolved against."""

    state_dir: Path
    config_file: Path
    scan: ScanConfig = field(default_factory=ScanConfig)
    limits: ScanLimits = DEFAULT_LIMITS
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    log: LogConfig = field(default_factory=LogConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    watch: WatchConfig = field(default_factory=WatchConfig)
    programs: ProgramsConfig = field(default_factory=ProgramsConfig)
    clamd: ClamdConfig = field(default_factory=ClamdConfig)
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    updates: UpdatesConfig = field(default_factory=UpdatesConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)

    @property
    def rules_dir(self) -> Path:
        """The rules in force: the configured directory, else an installed signed bundle, else bundled."""
        if self.scan.rules_dir:
            return Path(self.scan.rules_dir).expanduser()
        from agent.updates.current import installed_rules_dir  # noqa: PLC0415 - updates imports config

        return installed_rules_dir(self.state_dir) or bundled_rules_dir()

    @property
    def policy_path(self) -> Path:
        """The minimization policy: configured, else the one beside the rules in force, else bundled."""
        if self.privacy.policy_file:
            return Path(self.privacy.policy_file).expanduser()
        beside = self.rules_dir / "policy.toml"
        return beside if beside.is_file() else bundled_rules_dir() / "policy.toml"

    @property
    def jobs(self) -> int:
        """Worker processes to use: the configured count, else one per core."""
        return self.scan.jobs or (os.cpu_count() or 1)


def max_jobs() -> int:
    """The most worker processes a scan may start: four per core (each holds some 30 MB)."""
    return _JOBS_PER_CORE * (os.cpu_count() or 1)


def check_jobs(jobs: int, where: str) -> None:
    """Raise :class:`ConfigError` unless ``jobs`` is between 1 and :func:`max_jobs`."""
    if not 1 <= jobs <= max_jobs():
        raise ConfigError(f"{where} must be between 1 and {max_jobs()} ({_JOBS_PER_CORE} per core)")


def _table() -> tuple[Option, ...]:
    opts: list[Option] = [
        Option("scan", "jobs", int, 0, "scan worker processes; 0 means one per core"),
        Option(
            "scan", "rules_dir", str, "", "directory of *.yar, *.hsb and *.hdb files; empty: bundled rules"
        ),
        Option(
            "scan",
            "cache",
            bool,
            default=True,
            doc="reuse verdicts of unchanged files (device, inode, size, times)",
        ),
        Option(
            "scan",
            "inflight_bytes",
            int,
            default=128 << 20,
            doc="bytes of files out at the workers at once (each holds its file in memory or mapped), "
            "whatever the files' sizes; 0: no bound",
        ),
        Option("privacy", "pseudonym_period", str, "month", "rotation of the device pseudonym", _PERIODS),
        Option(
            "privacy", "policy_file", str, "", "minimization policy TOML; empty: bundled rules/policy.toml"
        ),
        Option(
            "privacy",
            "purposes_file",
            str,
            "",
            "purposes and legal bases TOML; empty: bundled rules/purposes.toml",
        ),
        Option("log", "level", str, "info", "log level", _LOG_LEVELS),
        Option("log", "format", str, "auto", "json, console, or auto (console on a terminal)", _LOG_FORMATS),
        *_service_options(),
    ]
    docs = {
        "max_file_size": "largest object scanned, bytes",
        "max_scan_size": "most bytes scanned per object including archive members",
        "max_recursion": "deepest archive nesting followed",
        "max_files": "most archive members scanned per object",
        "max_scan_time": "seconds per object before its worker is stopped",
        "max_compression_ratio": "largest member uncompressed/compressed ratio (bomb guard)",
        "ratio_floor": "bytes a member may inflate to before the ratio guard applies",
        "max_extract_chars": "most characters of text examined for personal data",
    }
    for f in fields(ScanLimits):
        default = getattr(DEFAULT_LIMITS, f.name)
        opts.append(Option("limits", f.name, type(default), default, docs[f.name]))
    return tuple(opts)


def _service_options() -> list[Option]:
    mib = 1 << 20
    return [
        Option("service", "control_socket", str, "", "status socket (0600); empty: <state dir>/control.sock"),
        Option("service", "nice", int, 10, "CPU niceness of the service and its workers (0-19)"),
        Option("service", "cpu_budget", float, 0.25, "cores the background sweep may average over 10 s"),
        Option("service", "worker_max_rss", int, 300 * mib, "bytes of RSS before a worker is recycled"),
        Option(
            "service", "worker_idle_retire", float, 60.0, "seconds without work before workers exit; 0: never"
        ),
        Option("service", "defer_on_battery", bool, default=True, doc="postpone sweeps on battery power"),
        Option("service", "defer_when_busy", bool, default=True, doc="postpone sweeps while load > cores"),
        Option("service", "stop_timeout", float, 8.0, "seconds in-flight scans get to finish on stop"),
        Option("watch", "enabled", bool, default=True, doc="scan files when they are written or moved in"),
        Option("watch", "roots", tuple, (), "directories to watch and sweep; empty: the user's home"),
        Option("watch", "exclude", tuple, (), "glob patterns of paths never scanned on access"),
        Option(
            "watch",
            "exclude_extensions",
            tuple,
            (".part", ".crdownload", ".swp"),
            "extensions of files still being written, never scanned on access (the rename is)",
        ),
        Option("watch", "max_size", int, 0, "largest file scanned on access, bytes; 0: limits.max_file_size"),
        Option("watch", "settle", float, 0.5, "seconds a file must be quiet before it is scanned"),
        Option("watch", "queue_max", int, 100_000, "distinct paths queued before events coalesce"),
        Option("watch", "sweep_interval", float, 86_400.0, "seconds between background sweeps; 0: never"),
        Option("programs", "enabled", bool, default=True, doc="scan the executable of each new process"),
        Option("programs", "interval", float, 2.0, "seconds between process list polls"),
        Option("clamd", "enabled", bool, default=True, doc="serve the clamd-compatible socket"),
        Option("clamd", "socket", str, "", "Unix socket path; empty: <state dir>/clamd.sock"),
        Option("clamd", "socket_mode", int, 0o660, "permissions of the Unix socket"),
        Option("clamd", "tcp_port", int, 0, "also listen on 127.0.0.1:PORT; 0: no TCP"),
        Option("clamd", "stream_max_length", int, 100 * mib, "largest INSTREAM/FILDES object, bytes"),
        Option("clamd", "max_connections", int, 128, "concurrent client connections"),
        Option("clamd", "idle_timeout", float, 30.0, "seconds a client may wait before sending a command"),
        Option("clamd", "read_timeout", float, 120.0, "seconds a client may pause inside a stream"),
        *_upstream_options(),
        Option("updates", "enabled", bool, default=True, doc="the service polls the cloud for rule bundles"),
        Option("updates", "pinned_keys", tuple, (), "base64 Ed25519 keys a rule bundle may be signed with"),
        Option("updates", "max_age_days", int, 14, "refuse bundles older than this (freeze attacks)"),
        Option("updates", "poll_interval", float, 21_600.0, "seconds between polls for a new bundle"),
        Option("updates", "poll_jitter", float, 3_600.0, "random seconds added to each poll"),
        Option(
            "retention", "history_days", int, 90, "days scan history (sealed paths) is kept; 0: none kept"
        ),
        Option("retention", "cache_days", int, 30, "days a verdict-cache row is kept"),
        Option("retention", "outbox_days", int, 30, "days a queued record is kept before it is dropped"),
        Option("retention", "sent_log_days", int, 365, "days the transparency log keeps what was sent"),
        Option("retention", "quarantine_days", int, 30, "days a quarantined file is kept"),
        Option("retention", "logs_days", int, 14, "days log files under <state dir>/logs are kept"),
        Option("retention", "purge_interval", float, 3_600.0, "seconds between purges by the service"),
        Option("sandbox", "enabled", bool, default=True, doc="confine scan workers (limits, no network)"),
        Option("sandbox", "address_space", int, 0, "RLIMIT_AS of a worker, bytes; 0: sized from the limits"),
        Option(
            "sandbox",
            "cpu_seconds",
            int,
            0,
            "RLIMIT_CPU over a worker's life; 0: unset (timeouts bound items)",
        ),
        Option("sandbox", "open_files", int, 64, "file descriptors a worker may hold"),
        Option(
            "sandbox", "user", str, "nobody", "as root, the user workers run as (reading kept); empty: root"
        ),
        Option("sandbox", "network", bool, default=False, doc="let workers use the network (debugging only)"),
    ]


def _upstream_options() -> list[Option]:
    return [
        Option("upstream", "url", str, "", "https URL of the security cloud; empty: nothing is sent"),
        Option("upstream", "ca_file", str, "", "CA bundle to trust; empty: the system store"),
        Option("upstream", "pin_sha256", tuple, (), "base64 SHA-256 SPKI pins of the cloud's certificate"),
        Option("upstream", "token_file", str, "", "bearer token (0600); empty: <state dir>/upstream.token"),
        Option("upstream", "prefix_key", str, "", "base64 Ed25519 key that signs the reputation list"),
        Option("upstream", "batch_max_records", int, 500, "records per upload at most (1-1000)"),
        Option("upstream", "batch_max_bytes", int, 256 << 10, "bytes of JSON per upload at most"),
        Option("upstream", "flush_interval", float, 10.0, "seconds a record may wait for a fuller batch"),
        Option("upstream", "timeout", float, 10.0, "seconds per request to the cloud"),
        Option("upstream", "max_outbox_records", int, 100_000, "queued records kept; the oldest go first"),
        Option("upstream", "max_outbox_age", float, 30 * 86_400.0, "seconds a queued record is kept"),
        Option("upstream", "reputation_interval", float, 3_600.0, "seconds between prefix-list syncs"),
    ]


OPTIONS: tuple[Option, ...] = _table()
_SECTIONS = {
    "scan": ScanConfig,
    "privacy": PrivacyConfig,
    "log": LogConfig,
    "limits": ScanLimits,
    "service": ServiceConfig,
    "watch": WatchConfig,
    "programs": ProgramsConfig,
    "clamd": ClamdConfig,
    "upstream": UpstreamConfig,
    "updates": UpdatesConfig,
    "retention": RetentionConfig,
    "sandbox": SandboxSettings,
}


def home_dirs() -> tuple[Path, Path]:
    """Return (state_dir, config_dir): ``$ENDPOINT_AGENT_HOME`` for both, else the platform's dirs."""
    home = os.environ.get(_HOME_ENV)
    if home:
        path = Path(home).expanduser()
        return path, path
    return (
        Path(platformdirs.user_data_dir("endpoint-agent", appauthor=False)),
        Path(platformdirs.user_config_dir("endpoint-agent", appauthor=False)),
    )


def bundled_rules_dir() -> Path:
    """Return the rules shipped with the agent (installed package data, else the source tree's ``rules/``)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "bundled_rules", here.parent / "rules"):
        if candidate.is_dir():
            return candidate
    raise ConfigError("bundled rules not found; set [scan] rules_dir or pass --rules")


def load(config_file: Path | None = None) -> Config:
    """Load ``agent.toml`` (or ``config_file``); a missing default file means all defaults."""
    state_dir, config_dir = home_dirs()
    path = config_file or config_dir / "agent.toml"
    raw: dict[str, Any] = {}
    if config_file is not None or path.exists():
        raw = _read_toml(path)
    return _build(raw, state_dir, path)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); TOML files are UTF-8") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from exc


def _build(raw: dict[str, Any], state_dir: Path, path: Path) -> Config:
    sections: dict[str, object] = {}
    for section, value in raw.items():
        if section not in _SECTIONS:
            raise ConfigError(f"{path}: unknown key '{section}'")
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: {section!r} must be a table")
        sections[section] = _section(section, value, path)
    config = Config(state_dir=state_dir, config_file=path, **sections)  # type: ignore[arg-type]
    _check(config, path)
    return config


def _section(section: str, values: dict[str, Any], path: Path) -> object:
    known = {o.name: o for o in OPTIONS if o.section == section}
    checked: dict[str, Any] = {}
    for key, value in values.items():
        opt = known.get(key)
        if opt is None:
            raise ConfigError(f"{path}: unknown key '{section}.{key}'")
        checked[key] = _coerce(opt, value, path)
    cls = _SECTIONS[section]
    return replace(DEFAULT_LIMITS, **checked) if cls is ScanLimits else cls(**checked)


def _coerce(opt: Option, value: object, path: Path) -> object:
    where = f"{path}: {opt.section}.{opt.name}"
    if opt.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if opt.type is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of strings")
        return tuple(value)
    if type(value) is not opt.type:
        raise ConfigError(f"{where} must be {opt.type.__name__}, not {type(value).__name__}")
    if opt.choices and value not in opt.choices:
        raise ConfigError(f"{where} must be one of {', '.join(opt.choices)}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        raise ConfigError(f"{where} must not be negative")
    return value


def _check(config: Config, path: Path) -> None:
    limits = config.limits
    if limits.max_scan_size < limits.max_file_size:
        raise ConfigError(f"{path}: limits.max_scan_size must be >= limits.max_file_size")
    if limits.max_scan_time <= 0:
        raise ConfigError(f"{path}: limits.max_scan_time must be positive")
    if limits.max_compression_ratio < 1:
        raise ConfigError(f"{path}: limits.max_compression_ratio must be at least 1")
    if config.scan.jobs:
        check_jobs(config.scan.jobs, f"{path}: scan.jobs")
    if not 0 <= config.service.nice <= 19:
        raise ConfigError(f"{path}: service.nice must be between 0 and 19")
    if config.clamd.socket_mode & ~0o777:
        raise ConfigError(f"{path}: clamd.socket_mode must be a permission mode such as 0o660")
    _check_upstream(config.upstream, path)
    if config.retention.purge_interval <= 0:
        raise ConfigError(f"{path}: retention.purge_interval must be positive")
    if config.updates.max_age_days < 1:
        raise ConfigError(f"{path}: updates.max_age_days must be at least 1")
    if config.clamd.tcp_port > 65535:
        raise ConfigError(f"{path}: clamd.tcp_port must be a port number")


def _check_upstream(up: UpstreamConfig, path: Path) -> None:
    if up.url and not up.url.startswith("https://"):
        raise ConfigError(f"{path}: upstream.url must be an https:// URL (verdicts never travel in clear)")
    if not 1 <= up.batch_max_records <= 1000:
        raise ConfigError(f"{path}: upstream.batch_max_records must be between 1 and 1000")
    if up.timeout <= 0:
        raise ConfigError(f"{path}: upstream.timeout must be positive")


def example() -> str:
    """Return a commented ``agent.toml`` holding every option at its default."""
    lines: list[str] = []
    for section in _SECTIONS:
        lines.append(f"[{section}]")
        for opt in (o for o in OPTIONS if o.section == section):
            choices = f" ({' | '.join(opt.choices)})" if opt.choices else ""
            lines.append(f"# {opt.doc}{choices}")
            lines.append(f"{opt.name} = {_toml_value(opt.default, opt.name)}")
        lines.append("")
    return "\n".join(lines)


def show(config: Config) -> str:
    """Return the configuration in force as TOML, with the resolved directories as comments."""
    lines = [f"# config file: {config.config_file}", f"# state dir:   {config.state_dir}", ""]
    for section in _SECTIONS:
        lines.append(f"[{section}]")
        values = getattr(config, section)
        lines.extend(
            f"{o.name} = {_toml_value(getattr(values, o.name), o.name)}"
            for o in OPTIONS
            if o.section == section
        )
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: object, name: str = "") -> str:
    if name.endswith("_mode") and isinstance(value, int):
        return oct(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)
