"""Confine a scan worker process to the least it needs, once, before it parses anything.

:func:`confine` runs first thing in each worker (:func:`agent.worker.setup`). In order:

1. No network. Root: ``unshare(CLONE_NEWNET)``, a network namespace with only a loopback that is down.
   Otherwise ``unshare(CLONE_NEWUSER | CLONE_NEWNET)`` with the worker's own ids mapped, nested user
   namespaces capped at 0, and every capability in the new namespace dropped again. Where neither is
   permitted, only the audit hook of step 6 stands (it refuses Python-level sockets; native code is
   not stopped then). Path-named unix sockets are not covered by a network namespace; the audit hook
   and the unprivileged user of step 2 are what guard those.
2. As root: run as ``settings.user`` (``nobody``) with one capability kept, ``CAP_DAC_READ_SEARCH``,
   because the worker still opens the files it scans (the parent does not pass descriptors). The
   worker can then read any file but write, delete, signal, mount, trace or bind nothing a root
   process could. Without that capability (a service started with it removed) it stays as it is.
3. ``PR_SET_PDEATHSIG``: the worker dies with the process that started it, so no orphan spins on
   (set after step 2, whose id changes would clear it).
4. ``PR_SET_NO_NEW_PRIVS``: no exec can regain privileges.
5. Resource limits, soft = hard so they cannot be raised again: ``RLIMIT_CORE`` 0 (no core dump of
   scanned content), ``RLIMIT_FSIZE`` 0 (no byte written to any file), ``RLIMIT_NOFILE`` small,
   ``RLIMIT_AS`` sized from the scan limits and the rules (:func:`address_space`), ``RLIMIT_CPU`` only
   when configured: it counts over the worker's whole life, while the pool's wall-clock timeout
   already bounds each item more tightly (a worker is single-threaded); :func:`arm_cpu` re-arms a
   per-item CPU limit for a caller that knows where items start.
6. An audit hook (``sys.addaudithook``, permanent) refuses sockets, new processes and writes to the
   file system from Python code with :class:`SandboxViolation`, and bytecode caching is turned off.

Not done here: seccomp (no well-kept Python binding for a venv; an allow-list for CPython, YARA-X and
the parsers would be brittle across libc and kernel versions) and descriptor passing (see step 2).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import multiprocessing
import os
import pwd
import resource
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.engine.limits import MIB, ScanLimits

__all__ = [
    "DEFAULT_SANDBOX",
    "Confinement",
    "SandboxSettings",
    "SandboxViolation",
    "address_space",
    "arm_cpu",
    "confine",
]

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_PR_SET_PDEATHSIG = 1
_PR_SET_KEEPCAPS = 8
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)
_MMAP_THRESHOLD = 1 << 20
_CAP_DAC_READ_SEARCH = 2
_CAP_VERSION_3 = 0x20080522

_RUNTIME = 512 * MIB  # what the pipeline's imports, the YARA-X engine and its stacks map after confine()
_HEADROOM = 256 * MIB
_RULES_FACTOR = 8  # serialized rules -> deserialized rules, compiled wasm code and scanner state


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    """How far to confine workers.

    Attributes:
        enabled: apply the sandbox at all.
        address_space: ``RLIMIT_AS`` in bytes; 0 sizes it with :func:`address_space`.
        cpu_seconds: ``RLIMIT_CPU`` over the worker's life; 0 leaves it unset (the pool's timeout
            bounds each item).
        open_files: ``RLIMIT_NOFILE``: descriptors a worker may hold.
        user: as root, the user to run as (keeping ``CAP_DAC_READ_SEARCH``); empty stays root.
        network: allow the network (no namespace, no socket refusal); for debugging only.
    """

    enabled: bool = True
    address_space: int = 0
    cpu_seconds: int = 0
    open_files: int = 64
    user: str = "nobody"
    network: bool = False


DEFAULT_SANDBOX = SandboxSettings()


@dataclass(frozen=True, slots=True)
class Confinement:
    """What :func:`confine` applied in this process."""

    network: str  # "namespace", "user namespace", "audit hook", "allowed"
    user: str  # the user the worker runs as now, "" when unchanged
    address_space: int
    open_files: int
    cpu_seconds: int
    no_new_privs: bool


class SandboxViolation(PermissionError):
    """Python code in a confined worker tried something the sandbox refuses (network, process, write)."""

    def __init__(self, what: str) -> None:
        super().__init__(0, f"refused by the scan sandbox: {what}")  # errno 0: the reason is the text


def address_space(limits: ScanLimits, rules_bytes: int, in_use: int) -> int:
    """``RLIMIT_AS`` for a worker: what it maps now, the runtime, the rules and the data of one object.

    The data of one object: the file mapped twice (by the engine and by YARA-X through /proc), the
    members held along the nesting path (bounded by ``max_scan_size``) and one member being joined
    from its chunks. Rounded up to a MiB.
    """
    data = 2 * limits.max_file_size + limits.max_scan_size + limits.max_file_size
    total = in_use + _RUNTIME + _RULES_FACTOR * rules_bytes + data + _HEADROOM
    return math.ceil(total / MIB) * MIB


def confine(
    limits: ScanLimits, rules_bytes: int = 0, settings: SandboxSettings = DEFAULT_SANDBOX
) -> Confinement | None:
    """Confine this worker process (Linux); return what was applied, None when disabled or not Linux."""
    if not settings.enabled or not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # the interpreter's own libc; find_library would fork
    target = _resolve_user(settings.user) if os.geteuid() == 0 else None
    network = "allowed" if settings.network else _isolate_network(libc)
    user = _drop_privileges(libc, target) if target is not None else ""
    if network == "user namespace":
        _drop_all_caps(libc)
    _die_with_parent(libc)  # after the id changes: they clear the parent-death signal
    no_new_privs = libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
    space = settings.address_space or address_space(limits, rules_bytes, _vm_size())
    _set_limits(space, settings.open_files, settings.cpu_seconds)
    sys.dont_write_bytecode = True
    sys.addaudithook(_refuse(allow_network=settings.network))
    return Confinement(network, user, space, settings.open_files, settings.cpu_seconds, no_new_privs)


def return_large_buffers() -> None:
    """Serve allocations of 1 MiB and more from their own mappings, so that freeing them frees memory.

    glibc raises its mmap threshold to the size of the largest block freed (up to 32 MiB). After that
    a file read into memory for a scan (up to 16 MiB) is carved from the heap and stays there as the
    worker's memory once the scan is done; with the threshold fixed it goes back to the system.
    """
    if not sys.platform.startswith("linux"):
        return
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)  # glibc and musl have it; musl's does nothing
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)


def arm_cpu(seconds: float) -> None:
    """Let the process use at most ``seconds`` more CPU time (SIGXCPU then ends it); call per item."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(used.ru_utime + used.ru_stime + seconds)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


# ---------------------------------------------------------------------- steps


def _die_with_parent(libc: ctypes.CDLL) -> None:
    """Get SIGKILL when the parent dies; exit now if it already has."""
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid is not None and os.getppid() != parent.pid:
        os._exit(70)


def _isolate_network(libc: ctypes.CDLL) -> str:
    """Move into an empty network namespace; say how, or ``audit hook`` when it is not permitted."""
    if os.geteuid() == 0:  # never a user namespace for root: it would lose its reach into others' files
        return "namespace" if libc.unshare(_CLONE_NEWNET) == 0 else "audit hook"
    uid, gid = os.geteuid(), os.getegid()
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0:
        return "audit hook"
    with contextlib.suppress(OSError):  # without maps the worker runs as the overflow id: still works
        _write_proc("/proc/self/setgroups", "deny")
        _write_proc("/proc/self/uid_map", f"{uid} {uid} 1")
        _write_proc("/proc/self/gid_map", f"{gid} {gid} 1")
    with contextlib.suppress(OSError):  # best effort: no nested user namespace from this worker
        _write_proc("/proc/sys/user/max_user_namespaces", "0")
    return "user namespace"


def _resolve_user(name: str) -> tuple[str, int, int] | None:
    """``(name, uid, gid)`` of the user to run as, looked up before the network goes; None to stay."""
    if not name:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return name, entry.pw_uid, entry.pw_gid


def _drop_privileges(libc: ctypes.CDLL, target: tuple[str, int, int]) -> str:
    """As root: become ``target``, keeping only CAP_DAC_READ_SEARCH; skip if that cap is not ours."""
    if not _permitted() >> _CAP_DAC_READ_SEARCH & 1:
        return ""  # without it the user could not read what root reads as owner: stay
    name, uid, gid = target
    _clear_bounding_set(libc, keep=_CAP_DAC_READ_SEARCH)
    libc.prctl(_PR_SET_KEEPCAPS, 1, 0, 0, 0)
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    _capset(libc, 1 << _CAP_DAC_READ_SEARCH)
    libc.prctl(_PR_SET_KEEPCAPS, 0, 0, 0, 0)
    return name


def _drop_all_caps(libc: ctypes.CDLL) -> None:
    """In a fresh user namespace the worker holds every capability there: give them all up."""
    _clear_bounding_set(libc, keep=-1)
    with contextlib.suppress(OSError):
        _capset(libc, 0)


def _clear_bounding_set(libc: ctypes.CDLL, keep: int) -> None:
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    for cap in range(_last_cap() + 1):
        if cap != keep:
            libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def _capset(libc: ctypes.CDLL, caps: int) -> None:
    """Set the effective and permitted capabilities to ``caps``, inheritable to none."""
    header = _CapHeader(_CAP_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        word = (caps >> (32 * i)) & 0xFFFFFFFF
        data[i].effective = data[i].permitted = word
    if libc.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _set_limits(space: int, open_files: int, cpu_seconds: int) -> None:
    """Lower the limits, soft = hard (never above what is in force already)."""
    wanted = {
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_FSIZE: 0,
        resource.RLIMIT_NOFILE: open_files,
        resource.RLIMIT_AS: space,
    }
    for which, value in wanted.items():
        _lower(which, value, value)
    if cpu_seconds:
        used = resource.getrusage(resource.RUSAGE_SELF)
        soft = math.ceil(used.ru_utime + used.ru_stime + cpu_seconds)
        _lower(resource.RLIMIT_CPU, soft, soft + 1)  # SIGXCPU at soft; SIGKILL a second later


def _lower(which: int, soft: int, hard: int) -> None:
    _, current = resource.getrlimit(which)
    if current != resource.RLIM_INFINITY:
        soft, hard = min(soft, current), min(hard, current)
    resource.setrlimit(which, (soft, hard))


# ---------------------------------------------------------------------- the audit hook

_NETWORK_EVENTS = frozenset(
    {
        "socket.__new__",
        "socket.bind",
        "socket.connect",
        "socket.getaddrinfo",
        "socket.gethostbyaddr",
        "socket.gethostbyname",
        "socket.getnameinfo",
        "socket.sendmsg",
        "socket.sendto",
    }
)
_PROCESS_EVENTS = frozenset(
    {"os.exec", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.system", "subprocess.Popen"}
)
_WRITE_EVENTS = frozenset(
    {
        "os.chmod",
        "os.chown",
        "os.link",
        "os.mkdir",
        "os.mkfifo",
        "os.mknod",
        "os.remove",
        "os.removexattr",
        "os.rename",
        "os.rmdir",
        "os.setxattr",
        "os.symlink",
        "os.truncate",
        "os.utime",
        "shutil.rmtree",
    }
)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _refuse(*, allow_network: bool) -> Callable[[str, tuple[object, ...]], None]:
    refused = _PROCESS_EVENTS | _WRITE_EVENTS | (frozenset() if allow_network else _NETWORK_EVENTS)

    def hook(event: str, args: tuple[object, ...]) -> None:
        if event in refused:
            raise SandboxViolation(event)
        if event == "open" and _opens_for_writing(args):
            raise SandboxViolation("open for writing")

    return hook


def _opens_for_writing(args: tuple[object, ...]) -> bool:
    """For the ``open`` event ``(path, mode, flags)``: whether it may write (a descriptor path is fine)."""
    if len(args) < 3 or isinstance(args[0], int):
        return False
    mode, flags = args[1], args[2]
    if isinstance(mode, str):
        return any(c in mode for c in "wax+")
    return isinstance(flags, int) and bool(flags & _WRITE_FLAGS)


# ---------------------------------------------------------------------- /proc


def _write_proc(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _status_field(name: bytes) -> str:
    with Path("/proc/self/status").open("rb") as fh:
        for line in fh:
            if line.startswith(name + b":"):
                return line.split(b":", 1)[1].strip().decode()
    return ""


def _vm_size() -> int:
    """Bytes of address space this process maps now."""
    try:
        return int(_status_field(b"VmSize").split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return 0


def _permitted() -> int:
    try:
        return int(_status_field(b"CapPrm") or "0", 16)
    except (OSError, ValueError):
        return 0


def _last_cap() -> int:
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_bytes())
    except (OSError, ValueError):
        return 40
