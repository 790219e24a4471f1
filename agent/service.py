"""``endpoint-agent run``: the background service, wired from its parts.

One :class:`~agent.dispatch.Dispatcher` owns the scan session; the sources feed it from their own
threads: the clamd-compatible socket (streams and paths from other components), on-access file
events, the program monitor, and the background sweep. The main thread only handles signals and
housekeeping:

- SIGTERM / SIGINT: stop taking work, let in-flight scans finish (``service.stop_timeout``), flush
  the store, exit 0.
- SIGHUP: reload the config's rules and limits: build the new rules to the side, swap them in, keep
  the old ones when the new ones do not compile.
- sd_notify: ``READY=1`` once rules are loaded and sources are up, ``STATUS=`` with the queue depth,
  ``WATCHDOG=1`` at half the requested period, ``STOPPING=1``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

import psutil
import structlog

from agent import __version__, config
from agent.control import ControlServer
from agent.dispatch import Dispatcher
from agent.engine import load_rules
from agent.errors import AgentError
from agent.governance import EgressGate, Retention, purge, retry_pending_erasures
from agent.governance.analytics import Analytics, sender_from_config
from agent.minimize import period_label
from agent.model import Outcome, ScanRequest
from agent.notify import Notifier
from agent.outbox import Store
from agent.session import rules_cache
from agent.sources.sweep import Sweeper, SweepSettings
from agent.throttle import CpuBudget, lower_priority, on_battery, system_busy

if TYPE_CHECKING:
    from agent.sources.on_access import OnAccess

__all__ = ["Periodic", "Service"]

log = structlog.get_logger("endpoint-agent")
_TICK = 0.5
_STATUS_EVERY = 5.0


class Component(Protocol):
    """A source or server the service starts and stops."""

    def start(self) -> None: ...
    def stop(self) -> None: ...


@dataclass(slots=True)
class _Events:
    stop: threading.Event = field(default_factory=threading.Event)
    reload: threading.Event = field(default_factory=threading.Event)


class Service:
    """The running service: build with a config, then :meth:`run` until a stop signal."""

    def __init__(self, cfg: config.Config, config_file: Path | None = None) -> None:
        self.config = cfg
        self._config_file = config_file
        self._events = _Events()
        self._notify = Notifier()
        self._started = time.monotonic()
        self._proc = psutil.Process()
        self._proc.cpu_percent(None)
        self._procs: dict[int, psutil.Process] = {}
        self.dispatcher: Dispatcher | None = None
        self._components: list[tuple[str, Component]] = []
        self._status_extra: dict[str, Callable[[], Any]] = {}
        self._sweeper: Sweeper | None = None
        self._failed = False
        self._current_period = self._period()

    # ------------------------------------------------------------------ lifecycle
    def run(self) -> int:
        """Run until SIGTERM or SIGINT; return the exit status."""
        self._install_signals()
        lower_priority(self.config.service.nice)
        rules = load_rules(self.config.rules_dir, rules_cache(self.config))
        reputation = self._upstream()
        self.dispatcher = Dispatcher(self.config, rules, reputation)
        self.dispatcher.start()
        control = ControlServer(self._control_path(), {"STATUS": self.status, "SWEEP": self.request_sweep})
        try:
            self._start_sources()
            control.start()
            self._notify.send("READY=1", f"STATUS={self._status_line()}")
            log.info("service_started", version=__version__, rules_version=rules.version)
            self._main_loop()
        finally:
            self._notify.send("STOPPING=1")
            log.info("service_stopping")
            control.close()
            self._stop_sources()
            self.dispatcher.stop(self.config.service.stop_timeout)
            log.info("service_stopped", scanned=sum(self.dispatcher.counters.scanned.values()))
        return 1 if self._failed else 0

    def _install_signals(self) -> None:
        def on_stop(_signum: int, _frame: FrameType | None) -> None:
            self._events.stop.set()

        def on_reload(_signum: int, _frame: FrameType | None) -> None:
            self._events.reload.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_reload)

    def _main_loop(self) -> None:
        last_status = last_watchdog = time.monotonic()
        while not self._events.stop.wait(_TICK):
            now = time.monotonic()
            if self.dispatcher is not None and not self.dispatcher.alive:
                log.error("dispatcher_stopped", action="service exits for its supervisor to restart it")
                self._failed = True
                return
            if self._events.reload.is_set():
                self._events.reload.clear()
                self.reload()
            interval = self._notify.watchdog_interval
            if interval is not None and now - last_watchdog >= interval:
                self._notify.send("WATCHDOG=1")
                last_watchdog = now
            period = self._period()
            if period != self._current_period:  # a new pseudonym period: records must carry the new one
                self._current_period = period
                self.dispatcher.swap_rules(self.dispatcher.rules)  # type: ignore[union-attr]
            if now - last_status >= _STATUS_EVERY:
                self._notify.send(f"STATUS={self._status_line()}")
                last_status = now

    def add(self, name: str, component: Component, status: Callable[[], Any] | None = None) -> None:
        """Register a source; it starts with the service and stops before the dispatcher."""
        self._components.append((name, component))
        if status is not None:
            self._status_extra[name] = status

    def _start_sources(self) -> None:
        if self.dispatcher is None:
            raise RuntimeError("dispatcher not started")
        cfg = self.config
        sweeper = self._sweeper = self._make_sweeper()
        self.add(
            "sweep",
            sweeper,
            lambda: {"sweeps": sweeper.sweeps, "running": sweeper.running, "deferred": sweeper.deferred},
        )
        if cfg.watch.enabled:
            on_access = self._on_access(sweeper.request)
            self.add("on_access", on_access, on_access.status)
        if cfg.clamd.enabled:
            clamd = self._clamd()
            self.add("clamd", clamd)
        if cfg.updates.enabled and cfg.updates.pinned_keys and cfg.upstream.url:
            self.add("rules_updates", self._rules_poller())
        retention = Retention.from_config(cfg)
        self.add("retention", Periodic("retention", retention.purge_interval, self._purge))
        if cfg.programs.enabled:
            from agent.sources.programs import ProgramMonitor, ProgramSettings  # noqa: PLC0415

            monitor = ProgramMonitor(ProgramSettings(interval=cfg.programs.interval))
            submit = self.dispatcher.submit
            poller = Periodic("programs", cfg.programs.interval, lambda: [submit(r) for r in monitor.poll()])
            self.add("programs", poller, lambda: dataclasses.asdict(monitor.stats()))
        for name, component in self._components:
            component.start()
            log.info("source_started", source=name)

    def _stop_sources(self) -> None:
        for name, component in reversed(self._components):
            try:
                component.stop()
            except Exception as exc:  # noqa: BLE001 - one source failing to stop must not block the rest
                log.warning("source_stop_failed", source=name, error=type(exc).__name__)

    def _upstream(self) -> Callable[[str], str | None] | None:
        """Delivery and reputation, when a cloud is configured; returns the reputation check."""
        cfg = self.config
        if not cfg.upstream.url:
            return None
        from agent.outbox.delivery import DeliveryLoop, DeliverySettings  # noqa: PLC0415 - httpx only if used
        from agent.upstream import client_from_config, reputation_from_config  # noqa: PLC0415

        up = cfg.upstream
        try:
            client = client_from_config(cfg)
        except AgentError as exc:
            log.error("upstream_unavailable", reason=str(exc))  # noqa: TRY400 - a reason, not a crash
            return None
        if client is None:
            return None
        settings = DeliverySettings(
            up.batch_max_records, up.batch_max_bytes, up.max_outbox_records, up.max_outbox_age
        )
        delivery_gate, lookup_gate = EgressGate.open(cfg), EgressGate.open(cfg)  # one per thread
        delivery = DeliveryLoop(
            cfg.state_dir / "agent.db", client, settings, up.flush_interval, delivery_gate
        )
        self.add("delivery", delivery, delivery.status)
        log_store = Store(cfg.state_dir / "agent.db")
        lock = threading.Lock()

        def log_sent(recipient: str, purpose: str, kind: str, payload: bytes) -> None:
            with lock:
                log_store.log_sent(recipient, purpose, kind, payload)

        reputation = reputation_from_config(cfg, log_sent, lookup_gate.sending)
        analytics_gate = EgressGate.open(cfg)
        analytics = Analytics.open(cfg.state_dir)
        sender = sender_from_config(cfg, analytics, analytics_gate, log_sent)
        if sender is not None:  # sends only while product_analytics has consent (the gate decides)
            self.add("analytics", Periodic("analytics", 3_600.0, sender.send_due))
        closers = (
            log_store.close,
            delivery_gate.close,
            lookup_gate.close,
            reputation.close if reputation else None,
            sender.close if sender else None,
            analytics.close,
            analytics_gate.close,
        )
        self.add("upstream_handles", _OnStop(*closers))
        if reputation is None:
            return None
        sync = Periodic("reputation", up.reputation_interval, reputation.sync)
        self.add(
            "reputation",
            sync,
            lambda: {"version": reputation.prefixes.version, "lookups": reputation.lookups},
        )
        return reputation.check

    def _clamd(self) -> Component:
        from agent.sources.clamd import ClamdServer, ClamdSettings  # noqa: PLC0415 - service only

        c = self.config.clamd
        settings = ClamdSettings(
            socket_path=clamd_socket(self.config),
            socket_mode=c.socket_mode,
            tcp_port=c.tcp_port,
            stream_max_length=c.stream_max_length,
            max_connections=c.max_connections,
            idle_timeout=c.idle_timeout,
            command_read_timeout=c.idle_timeout,
            read_timeout=c.read_timeout,
        )
        return ClamdServer(settings, _ClamdBackend(self), self.config.state_dir / "spool")

    def _rules_poller(self) -> Component:
        from agent.updates.fetch import rules_client  # noqa: PLC0415 - service only
        from agent.updates.poll import RulesPoller  # noqa: PLC0415
        from agent.updates.settings import UpdateSettings  # noqa: PLC0415

        cfg = self.config
        settings = UpdateSettings.from_config(cfg)
        return RulesPoller(
            lambda: rules_client(cfg), cfg.state_dir, settings, lambda _: self._events.reload.set()
        )

    def _on_access(self, request_sweep: Callable[[], None]) -> OnAccess:
        from agent.sources.fs_watch import WatchSettings  # noqa: PLC0415 - watchdog only in the service
        from agent.sources.on_access import OnAccess  # noqa: PLC0415
        from agent.sources.settle import SettleSettings  # noqa: PLC0415

        assert self.dispatcher is not None  # noqa: S101 - set by run() before sources start
        w = self.config.watch
        watch = WatchSettings(
            exclude_globs=w.exclude, exclude_extensions=w.exclude_extensions, max_size=w.max_size or None
        )
        settle = SettleSettings(delay=w.settle, max_delay=max(30.0, w.settle), max_paths=w.queue_max)
        always = (str(self.config.state_dir.resolve()),)
        submit = self.dispatcher.submit
        roots = watch_roots(self.config)
        return OnAccess(roots, watch, settle, always, submit=submit, request_sweep=request_sweep)

    def _make_sweeper(self) -> Sweeper:
        assert self.dispatcher is not None  # noqa: S101 - set by run() before sources start
        cfg = self.config
        budget = CpuBudget(cfg.service.cpu_budget)
        settings = SweepSettings(
            roots=watch_roots(cfg),
            interval=cfg.watch.sweep_interval,
            exclude=cfg.watch.exclude,
            exclude_extensions=cfg.watch.exclude_extensions,
            exclude_dirs=frozenset({str(cfg.state_dir.resolve())}),
            stamp_file=cfg.state_dir / "sweep.stamp",
        )

        def may_run() -> bool:
            battery = cfg.service.defer_on_battery and on_battery()
            return not (battery or (cfg.service.defer_when_busy and system_busy()))

        feed = self.dispatcher.feed
        sweeper = Sweeper(settings, self.dispatcher.submit, feed.wait_for_room, budget.pace, may_run)
        sweeper.on_done = lambda: _count_run(cfg)
        return sweeper

    # ------------------------------------------------------------------ reload and status
    def reload(self) -> bool:
        """Build the configured rules to the side and swap them in; keep the old ones on failure."""
        assert self.dispatcher is not None  # noqa: S101 - only called while running
        try:
            fresh = config.load(self._config_file)
            rules = load_rules(fresh.rules_dir, rules_cache(fresh))
        except AgentError as exc:
            log.error("rules_reload_failed", reason=str(exc), kept=self.dispatcher.rules.version)  # noqa: TRY400 - the reason is the message; no traceback needed
            return False
        self.dispatcher.swap_rules(rules)
        log.info("rules_reloaded", rules_version=rules.version)
        return True

    def _purge(self) -> None:
        """Storage limitation: drop expired rows everywhere, and resend erasures still pending."""
        report = purge(self.config)
        log.info(
            "retention_purged", **{k: v for k, v in dataclasses.asdict(report).items() if isinstance(v, int)}
        )
        retry_pending_erasures(self.config)

    def request_reload(self) -> None:
        """Reload rules and limits at the next tick (SIGHUP, clamd RELOAD, a rules update)."""
        self._events.reload.set()

    def request_stop(self) -> None:
        """Stop the service (SIGTERM, clamd SHUTDOWN)."""
        self._events.stop.set()

    def request_sweep(self) -> dict[str, Any]:
        """Start a sweep of the watched roots now (``endpoint-agent sweep``)."""
        if self._sweeper is None:
            return {"sweep": "not available"}
        self._sweeper.request(by_user=True)
        return {"sweep": "requested"}

    def status(self) -> dict[str, Any]:
        """Counts, versions and resource use for ``endpoint-agent status``: no paths, no names."""
        d = self.dispatcher
        info: dict[str, Any] = {
            "running": True,
            "version": __version__,
            "uptime_s": round(time.monotonic() - self._started, 1),
        }
        if d is not None:
            info |= {
                "rules_version": d.rules.version,
                "queue_depth": d.queue_depth(),
                "scanned": dict(d.counters.scanned),
                "detections": dict(d.counters.detections),
                "errors": dict(d.counters.errors),
            }
            with contextlib.suppress(sqlite3.Error):
                info |= Store.counts(self.config.state_dir / "agent.db")
        info |= self._resources()
        for name, extra in self._status_extra.items():
            with contextlib.suppress(Exception):
                info[name] = extra()
        return info

    def _resources(self) -> dict[str, Any]:
        """RSS and CPU of the service and its workers (CPU since the previous status call)."""
        procs = [self._proc, *self._proc.children(recursive=True)]
        known = {p.pid: self._procs.get(p.pid, p) for p in procs}  # keep objects: cpu_percent is a delta
        self._procs = known
        rss = cpu = 0.0
        for p in known.values():
            with contextlib.suppress(psutil.Error):
                rss += p.memory_info().rss
                cpu += p.cpu_percent(None)
        return {"rss_mb": round(rss / (1 << 20), 1), "cpu_percent": round(cpu, 1), "processes": len(known)}

    def _status_line(self) -> str:
        d = self.dispatcher
        if d is None:
            return "starting"
        return f"queue {d.queue_depth()}, scanned {sum(d.counters.scanned.values())}"

    def _period(self) -> str:
        return period_label(dt.datetime.now(dt.UTC), self.config.privacy.pseudonym_period)

    def _control_path(self) -> Path:
        return control_path(self.config)


class _ClamdBackend:
    """What the clamd socket needs from the service: scans, a version, reload, shutdown, stats."""

    def __init__(self, service: Service) -> None:
        self._service = service

    def submit(self, request: ScanRequest) -> Future[Outcome]:
        """Queue a scan with the dispatcher (streams and socket scans are urgent)."""
        dispatcher = self._service.dispatcher
        if dispatcher is None:
            raise RuntimeError("the service is not running")
        return dispatcher.submit(request)

    def version(self) -> str:
        """VERSION: the agent's version and the rules version in force."""
        d = self._service.dispatcher
        return f"endpoint-agent {__version__}/{d.rules.version if d else 'none'}"

    def reload(self) -> None:
        """RELOAD: the same as SIGHUP."""
        self._service.request_reload()

    def shutdown(self) -> None:
        """SHUTDOWN (owner only, checked by the server): the same as SIGTERM."""
        self._service.request_stop()

    def stats(self) -> Mapping[str, int]:
        """STATS: queue depth and objects scanned."""
        d = self._service.dispatcher
        if d is None:
            return {}
        return {"queue": d.queue_depth(), "scanned": sum(d.counters.scanned.values())}


class _OnStop:
    """A component with nothing to start: it closes handles when the service stops."""

    def __init__(self, *closers: Callable[[], object] | None) -> None:
        self._closers = [c for c in closers if c is not None]

    def start(self) -> None:
        """Nothing to start."""

    def stop(self) -> None:
        """Close every handle."""
        for close in self._closers:
            close()


class Periodic:
    """A daemon thread that calls ``fn`` every ``interval`` seconds; a failing call is logged, not fatal."""

    def __init__(self, name: str, interval: float, fn: Callable[[], object]) -> None:
        self.name, self.interval, self._fn = name, interval, fn
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        """Start calling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current call."""
        self._stop.set()
        self._thread.join(5.0)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._fn()
            except RuntimeError:  # the dispatcher stopped
                return
            except Exception as exc:  # noqa: BLE001 - one failed poll must not end the source
                log.warning("periodic_task_failed", task=self.name, error=type(exc).__name__)
            self._stop.wait(self.interval)


def control_path(cfg: config.Config) -> Path:
    """Where the control socket of the service for this config lives."""
    return Path(cfg.service.control_socket) if cfg.service.control_socket else cfg.state_dir / "control.sock"


def _count_run(cfg: config.Config) -> None:
    """A finished sweep is a scan run for the (consented, perturbed) daily analytics counters."""
    analytics = Analytics.open(cfg.state_dir)
    try:
        analytics.count_run()
    finally:
        analytics.close()


def clamd_socket(cfg: config.Config) -> Path:
    """Where the clamd-compatible socket of the service for this config listens."""
    return Path(cfg.clamd.socket).expanduser() if cfg.clamd.socket else cfg.state_dir / "clamd.sock"


def watch_roots(cfg: config.Config) -> tuple[str, ...]:
    """The watched roots: configured, else the user's home."""
    return tuple(str(Path(r).expanduser()) for r in cfg.watch.roots) or (str(Path.home()),)
