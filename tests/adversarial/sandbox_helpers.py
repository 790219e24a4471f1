"""Worker setups that apply the real sandbox and then try what it must stop (spawned workers import them).

``setup_probe`` confines a bare worker and answers ``(act, argument)`` items by trying the act and
reporting what the kernel or the audit hook did. ``setup_hostile`` is the real scan worker
(:func:`agent.worker.setup`: sandbox, then pipeline) whose zip walker has been turned hostile, the
way an exploited parser would be: on a marker inside the archive it tries the act from inside the
parser, so the real boundaries, verdicts and session decide what the user sees.
"""

from __future__ import annotations

import ctypes
import os
import resource
import socket
import struct
import subprocess
import time
from typing import Any

from agent.engine import archives, sandbox
from agent.engine.limits import ScanLimits

_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.write.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t)
_LIBC.open.argtypes = (ctypes.c_char_p, ctypes.c_int, ctypes.c_int)
_LIBC.connect.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)


def native_connect(port: int) -> tuple[int, int]:
    """Connect to 127.0.0.1:``port`` through libc, past any Python audit hook: ``(rc, errno)``."""
    fd = _LIBC.socket(socket.AF_INET, socket.SOCK_STREAM, 0)
    if fd < 0:
        return fd, ctypes.get_errno()
    # struct sockaddr_in: the family in host order, the port in network order, the address, padding
    address = (
        struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + socket.inet_aton("127.0.0.1") + bytes(8)
    )
    rc = _LIBC.connect(fd, address, len(address))
    err = ctypes.get_errno()
    os.close(fd)
    return rc, err


def native_write(path: str) -> tuple[int, int, int, int]:
    """Create ``path`` and write one byte through libc: ``(open rc, open errno, write rc, write errno)``."""
    fd = _LIBC.open(path.encode(), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    open_err = ctypes.get_errno()
    if fd < 0:
        return fd, open_err, 0, 0
    n = _LIBC.write(fd, b"x", 1)
    write_err = ctypes.get_errno()
    os.close(fd)
    return fd, open_err, n, write_err


def _native_alloc(size: int) -> bool:
    """Whether libc malloc gives ``size`` bytes (lazily: no page is touched), freeing them at once."""
    _LIBC.malloc.restype = ctypes.c_void_p
    _LIBC.malloc.argtypes = (ctypes.c_size_t,)
    _LIBC.free.argtypes = (ctypes.c_void_p,)
    pointer = _LIBC.malloc(size)
    _LIBC.free(pointer)
    return pointer is not None


def _status() -> dict[str, Any]:
    with open("/proc/self/status", "rb") as fh:  # binary: no codec import in a confined worker
        lines = fh.read().decode().splitlines()
    fields = dict(line.split(":\t", 1) for line in lines if ":\t" in line)
    limits = {
        name: resource.getrlimit(getattr(resource, name))
        for name in ("RLIMIT_AS", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_CORE", "RLIMIT_CPU")
    }
    return {
        "pid": os.getpid(),
        "euid": os.geteuid(),
        "netns": os.readlink("/proc/self/ns/net"),
        "userns": os.readlink("/proc/self/ns/user"),
        "no_new_privs": fields.get("NoNewPrivs", "").strip(),
        "cap_eff": int(fields.get("CapEff", "0"), 16),
        "cap_bnd": int(fields.get("CapBnd", "0"), 16),
        "limits": limits,
    }


def _try(act: str, arg: Any, inherited: int | None) -> Any:
    """Try one act in the confined worker; report the outcome instead of raising, unless asked to."""
    acts = {
        "pid": os.getpid,
        "native-connect": lambda: native_connect(arg),
        "native-write": lambda: native_write(arg),
        "py-socket": lambda: socket.socket().close(),
        "py-write": lambda: open(arg, "wb").close(),
        "py-spawn": lambda: subprocess.run(["true"], check=False),
        "inherited-write": lambda: os.write(inherited or -1, b"x"),
        "alloc": lambda: len(bytearray(arg)),
        "malloc": lambda: _native_alloc(arg),
        "hang": lambda: time.sleep(3600),
    }
    if act == "spin":
        sandbox.arm_cpu(arg)
        while True:
            pass
    if act == "alloc-uncaught":
        return len(bytearray(arg))
    try:
        return ("done", acts[act]())
    except (OSError, MemoryError) as exc:
        return ("refused", type(exc).__name__, getattr(exc, "errno", None), str(exc))


def setup_probe(payload: tuple[ScanLimits, dict[str, Any], str | None]):
    """Open ``inherited`` for writing (before confinement), apply the real sandbox, then answer acts."""
    limits, settings, inherited_path = payload
    inherited = os.open(inherited_path, os.O_WRONLY | os.O_CREAT, 0o644) if inherited_path else None
    confinement = sandbox.confine(limits, 0, sandbox.SandboxSettings(**settings))

    def handle(item: tuple[str, Any]) -> Any:
        act, arg = item
        if act == "confinement":
            return confinement
        if act == "status":
            return _status()
        return _try(act, arg, inherited)

    return handle


# ---------------------------------------------------------------- the real worker, with a hostile parser


def _hostile(data: bytes) -> None:
    """What an exploited zip parser would try, chosen by a marker in the archive's bytes."""
    marker = bytes(data[: 1 << 16])
    if b"hostile:socket" in marker:
        socket.create_connection(("127.0.0.1", 9), timeout=1).close()
    if (at := marker.find(b"hostile:connect:")) >= 0:
        port = int(marker[at + 16 : at + 21].decode())
        rc, err = native_connect(port)
        if rc != 0:
            raise OSError(err, os.strerror(err))
    if (at := marker.find(b"hostile:write:")) >= 0:
        path = marker[at + 14 :].split(b"\n", 1)[0].decode()
        with open(path, "wb") as fh:
            fh.write(b"owned")
    if b"hostile:alloc" in marker:
        bytearray(2 << 30)  # past RLIMIT_AS: refused at once, long before the RSS ceiling is polled


def setup_hostile(ctx):
    """The real worker entry (sandbox, then pipeline), then a zip walker that acts on markers."""
    from agent import worker

    handle = worker.setup(ctx)
    walk = archives._zip_members

    def hostile_zip_members(data, budget):
        _hostile(bytes(data[: 1 << 16]))
        yield from walk(data, budget)

    archives._zip_members = hostile_zip_members

    def handle_request(request):
        if os.path.basename(request.path).startswith("die-by-socket"):
            socket.socket()  # outside every boundary: the worker dies of the refusal
        return handle(request)

    return handle_request


def setup_real(ctx):
    """The real worker entry, answering a request for the path ``?status`` with the worker's confinement."""
    from agent import worker

    handle = worker.setup(ctx)
    return lambda request: _status() if request.path == "?status" else handle(request)
