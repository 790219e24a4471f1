"""Service definitions: a hardened systemd unit, a launchd plist, and a Windows service (sc.exe) script.

The systemd unit runs ``endpoint-agent --config FILE run`` with ``Type=notify`` (the service sends
``READY=1``). ``NotifyAccess=all`` because the one-file binary is a bootloader whose Python child sends
the notifications; ``TMPDIR`` points into the state dir because the bootloader unpacks and executes
there, and ``/tmp`` may be ``noexec``; ``KillMode`` stays at its default (``control-group``) so a stop
takes the whole group. Left out on purpose: ``MemoryDenyWriteExecute=`` (YARA-X compiles rules to
native code at run time), ``PrivateNetwork=`` and ``IPAddressDeny=`` (the cloud is reached over the
network), ``ProtectProc=invisible`` (the program monitor looks at other processes), and
``~@resources`` from the system call filter (the service lowers its own CPU and I/O priority, and
scan workers set resource limits). ``~@privileged`` also denies ``fanotify_init``: an on-access
source built on fanotify would need it back.
"""

from __future__ import annotations

import dataclasses
import plistlib
from pathlib import Path, PurePath, PureWindowsPath

from installer.layout import SERVICE_NAME, Layout

__all__ = [
    "LAUNCHD_LABEL",
    "WINDOWS_SERVICE",
    "exec_args",
    "launchd_plist",
    "launchd_plist_path",
    "macos_layout",
    "systemd_unit",
    "windows_paths",
    "windows_service_script",
]

LAUNCHD_LABEL = "org.endpoint-agent.agent"
WINDOWS_SERVICE = "EndpointAgent"
_DESCRIPTION = "endpoint-agent: privacy-first endpoint scanning"

# Hardening for every scope; values are systemd's syntax.
_HARDENING = (
    ("NoNewPrivileges", "yes"),
    ("ProtectSystem", "strict"),
    ("ProtectHome", "read-only"),
    ("PrivateTmp", "yes"),
    ("PrivateDevices", "yes"),
    ("PrivateIPC", "yes"),
    ("PrivateMounts", "yes"),
    ("ProtectKernelTunables", "yes"),
    ("ProtectKernelModules", "yes"),
    ("ProtectKernelLogs", "yes"),
    ("ProtectControlGroups", "yes"),
    ("ProtectClock", "yes"),
    ("ProtectHostname", "yes"),
    ("RestrictNamespaces", "yes"),
    ("RestrictRealtime", "yes"),
    ("RestrictSUIDSGID", "yes"),
    ("LockPersonality", "yes"),
    ("RemoveIPC", "yes"),
    ("KeyringMode", "private"),
    ("DevicePolicy", "closed"),
    ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
    ("SystemCallFilter", "@system-service"),
    ("SystemCallFilter", "~@privileged"),  # not ~@resources: the agent lowers its nice and I/O priority
    ("SystemCallErrorNumber", "EPERM"),
    ("SystemCallArchitectures", "native"),
    ("UMask", "0077"),
)


def exec_args(layout: Layout) -> list[str]:
    """The service's command line: the installed binary, its config, ``run``."""
    return [str(layout.binary), "--config", str(layout.config_file), "run"]


def systemd_unit(layout: Layout) -> str:
    """The systemd unit for ``layout`` (system-wide or ``--user``)."""
    system = layout.scope == "system"
    lines = ["[Unit]", f"Description={_DESCRIPTION}"]
    if system:
        lines += ["After=network-online.target", "Wants=network-online.target"]
    lines += [
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=all",
        "ExecStart=" + _exec_start(exec_args(layout)),
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartSec=5s",
        "TimeoutStopSec=30s",
        "Nice=10",
        "Environment=" + _quote(f"ENDPOINT_AGENT_HOME={layout.state_dir}"),
        "Environment=" + _quote(f"TMPDIR={layout.state_dir / 'tmp'}"),
    ]
    if layout.uses_state_directory:
        lines += [f"StateDirectory={SERVICE_NAME}", "StateDirectoryMode=0700"]
    else:
        lines.append("ReadWritePaths=" + _quote(str(layout.state_dir)))
    if system:
        # A system-wide scanner reads every file, and may do nothing else a root process could.
        lines.append("CapabilityBoundingSet=CAP_DAC_READ_SEARCH")
    else:
        # A user manager applies the sandbox inside a user namespace, where it may drop every capability.
        lines += ["PrivateUsers=yes", "CapabilityBoundingSet="]
    lines += [f"{key}={value}" for key, value in _HARDENING]
    lines += ["", "[Install]", f"WantedBy={'multi-user.target' if system else 'default.target'}", ""]
    return "\n".join(lines)


def _exec_start(args: list[str]) -> str:
    """ExecStart's words: systemd expands ``$VAR`` in the arguments, not in the program's path."""
    return " ".join([_quote(args[0]), *(_quote(arg, variables=True) for arg in args[1:])])


def _quote(arg: str, variables: bool = False) -> str:
    """One word of a unit file: specifiers (and ``$`` where variables expand) escaped; quoted if needed."""
    escaped = arg.replace("%", "%%")
    if variables:
        escaped = escaped.replace("$", "$$")
    if any(c.isspace() or c in "\"'\\;" for c in escaped):
        return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return escaped


# ---------------------------------------------------------------- macOS
def launchd_plist_path(scope: str, home: Path | None = None) -> PurePath:
    """Where the plist goes: ``/Library/LaunchDaemons`` system-wide, ``~/Library/LaunchAgents`` per user."""
    if scope == "system":
        return PurePath("/Library/LaunchDaemons") / f"{LAUNCHD_LABEL}.plist"
    return (home or Path.home()) / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"


def launchd_plist(layout: Layout) -> bytes:
    """The launchd property list (XML) that keeps ``endpoint-agent run`` running."""
    state = str(layout.state_dir)
    doc: dict[str, object] = {
        "Label": LAUNCHD_LABEL,
        "ProgramArguments": exec_args(layout),
        "EnvironmentVariables": {"ENDPOINT_AGENT_HOME": state, "TMPDIR": str(layout.state_dir / "tmp")},
        "WorkingDirectory": state,
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 5,
        "ExitTimeOut": 30,
        "ProcessType": "Background",
        "LowPriorityIO": True,
        "Nice": 10,
        "Umask": 0o077,
        "StandardErrorPath": str(layout.state_dir / "agent.log"),
    }
    if layout.scope == "system":
        doc["UserName"] = "root"
    return plistlib.dumps(doc, fmt=plistlib.FMT_XML, sort_keys=True)


# ---------------------------------------------------------------- Windows
def windows_service_script(
    binary: PureWindowsPath, config_file: PureWindowsPath, state: PureWindowsPath
) -> str:
    """A ``.cmd`` script of ``sc.exe`` and ``reg.exe`` lines that registers the service (LocalSystem).

    The service may use only the privileges listed in ``sc.exe privs`` (reading every file needs
    ``SeBackupPrivilege``, as ``CAP_DAC_READ_SEARCH`` on Linux); it restarts on failure.
    """
    bin_path = f'\\"{binary}\\" --config \\"{config_file}\\" run'
    key = rf"HKLM\SYSTEM\CurrentControlSet\Services\{WINDOWS_SERVICE}"
    env = f"ENDPOINT_AGENT_HOME={state}\\0TMPDIR={state / 'tmp'}"
    lines = [
        "@echo off",
        f"rem Registers the {WINDOWS_SERVICE} service (by endpoint-agent-setup). Run as administrator.",
        (
            f'sc.exe create {WINDOWS_SERVICE} binPath= "{bin_path}" start= delayed-auto'
            f' obj= LocalSystem DisplayName= "endpoint-agent"'
        ),
        f'sc.exe description {WINDOWS_SERVICE} "{_DESCRIPTION}"',
        f"sc.exe failure {WINDOWS_SERVICE} reset= 86400 actions= restart/5000/restart/5000/restart/60000",
        f"sc.exe sidtype {WINDOWS_SERVICE} unrestricted",
        f"sc.exe privs {WINDOWS_SERVICE} SeBackupPrivilege/SeChangeNotifyPrivilege",
        f'reg.exe add "{key}" /v Environment /t REG_MULTI_SZ /d "{env}" /f',
        f"sc.exe start {WINDOWS_SERVICE}",
        "",
    ]
    return "\r\n".join(lines)


def macos_layout(layout: Layout) -> Layout:
    """The macOS paths for a layout without ``--prefix``: Application Support, and a plist for launchd."""
    if layout.prefix is not None:
        return dataclasses.replace(layout, unit_file=Path(launchd_plist_path(layout.scope)))
    base = (
        Path("/Library/Application Support")
        if layout.scope == "system"
        else Path.home() / "Library" / "Application Support"
    ) / SERVICE_NAME
    binary = Path("/usr/local/bin") if layout.scope == "system" else Path.home() / ".local" / "bin"
    return dataclasses.replace(
        layout,
        binary=binary / SERVICE_NAME,
        config_file=base / "agent.toml",
        state_dir=base / "state",
        unit_file=Path(launchd_plist_path(layout.scope)),
    )


def windows_paths(prefix: str | None = None) -> tuple[PureWindowsPath, PureWindowsPath, PureWindowsPath]:
    """(binary, config file, state dir) of a Windows install, under ``prefix`` when given."""
    if prefix:
        root = PureWindowsPath(prefix)
        return root / "bin" / f"{SERVICE_NAME}.exe", root / "etc" / "agent.toml", root / "state"
    data = PureWindowsPath(r"C:\ProgramData") / SERVICE_NAME
    return (
        PureWindowsPath(r"C:\Program Files") / SERVICE_NAME / f"{SERVICE_NAME}.exe",
        data / "agent.toml",
        data / "state",
    )
