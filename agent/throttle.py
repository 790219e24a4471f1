"""Keeping the service invisible: low priority, a CPU budget for background work, power awareness.

Anchors: Defender's ``ScanAvgCPULoadFactor`` (a CPU share for scans), osquery's watchdog (limits
per worker), Wazuh's leaky bucket (an event budget). Here the background sweep asks a
:class:`CpuBudget` before each slice of work and sleeps while the agent, with its workers, has used
more than its share of one core over the last window. On-access and stream scans never wait on it.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Callable

import psutil
import structlog

__all__ = ["CpuBudget", "lower_priority", "on_battery", "system_busy", "tree_cpu_seconds"]

log = structlog.get_logger("endpoint-agent")


def lower_priority(nice: int) -> None:
    """Run this process (and the workers it starts later) at low CPU and I/O priority."""
    with contextlib.suppress(OSError):
        current = os.getpriority(os.PRIO_PROCESS, 0)
        if nice > current:
            os.nice(nice - current)
    ioprio = getattr(psutil, "IOPRIO_CLASS_BE", None)
    if ioprio is not None:
        with contextlib.suppress(psutil.Error, OSError, ValueError):
            psutil.Process().ionice(ioprio, 7)  # best effort, lowest level: behind interactive I/O


def tree_cpu_seconds(proc: psutil.Process | None = None) -> float:
    """CPU seconds (user + system) used by this process and its live children."""
    proc = proc or psutil.Process()
    total = 0.0
    for p in (proc, *_children(proc)):
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def _children(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.Error:
        return []


def on_battery() -> bool:
    """Whether the machine runs on battery right now (False where there is no battery)."""
    try:
        battery = psutil.sensors_battery()
    except (OSError, NotImplementedError, AttributeError):
        return False
    return battery is not None and battery.power_plugged is False


def system_busy() -> bool:
    """Whether the 1-minute load average exceeds the number of cores."""
    try:
        return os.getloadavg()[0] > (os.cpu_count() or 1)
    except OSError:
        return False


class CpuBudget:
    """Average CPU use of the agent's process tree, kept at or below ``share`` of one core.

    :meth:`pace` is called between slices of background work; it sleeps while the tree's CPU time
    over the last ``window`` seconds exceeds ``share * window``.
    """

    def __init__(
        self,
        share: float,
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = tree_cpu_seconds,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self.share = share
        self.window = window
        self._clock, self._cpu, self._sleep = clock, cpu, sleep
        self._samples: deque[tuple[float, float]] = deque([(clock(), cpu())])
        self.throttled_seconds = 0.0

    def usage(self) -> float:
        """Cores used on average over the current window."""
        now, used = self._clock(), self._cpu()
        self._samples.append((now, used))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()
        then, used_then = self._samples[0]
        return (used - used_then) / max(now - then, 1e-3)

    def pace(self, stop: Callable[[], bool] = lambda: False) -> None:
        """Sleep in short steps while over budget (or until ``stop()``)."""
        if self.share <= 0:
            return
        while not stop() and self.usage() > self.share:
            self._sleep(0.2)
            self.throttled_seconds += 0.2
