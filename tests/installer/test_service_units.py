"""The service definitions: the systemd unit passes systemd-analyze; launchd and Windows are content-checked."""

from __future__ import annotations

import dataclasses
import plistlib
import re
import shutil
import subprocess
from pathlib import Path, PureWindowsPath

import pytest
from setup_support import EXAMPLE_ANSWERS

from installer.layout import make_layout
from installer.units import (
    LAUNCHD_LABEL,
    launchd_plist,
    launchd_plist_path,
    macos_layout,
    systemd_unit,
    windows_paths,
    windows_service_script,
)

pytest_plugins = ["setup_fixtures"]

HARDENING = {
    "Type": "notify",
    "NotifyAccess": "all",
    "ProtectSystem": "strict",
    "NoNewPrivileges": "yes",
    "PrivateTmp": "yes",
    "ProtectHome": "read-only",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "SystemCallFilter": "@system-service",
}
EXPOSURE_TARGET = 3.0


def _systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    return tool


def _unit(tmp_path: Path, scope: str, state: Path | None = None, prefix_name: str = "prefix") -> Path:
    """Write the unit of a prefix install whose binary exists (verify checks ExecStart)."""
    layout = make_layout(scope, tmp_path / prefix_name)  # type: ignore[arg-type]
    if state is not None:
        layout = dataclasses.replace(layout, state_dir=state)
    layout.binary.parent.mkdir(parents=True)
    layout.binary.write_text("#!/bin/sh\nexit 0\n")
    layout.binary.chmod(0o755)
    unit = tmp_path / scope / "endpoint-agent.service"
    unit.parent.mkdir()
    unit.write_text(systemd_unit(layout))
    return unit


def _settings(unit: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


@pytest.mark.parametrize(
    ("scope", "state"), [("system", Path("/var/lib/endpoint-agent")), ("system", None), ("user", None)]
)
def test_the_unit_passes_systemd_analyze_verify(tmp_path, scope, state):
    """`systemd-analyze verify` accepts the unit: system-wide (StateDirectory or a prefix) and per user."""
    tool = _systemd_analyze()
    unit = _unit(tmp_path, scope, state)
    env = {"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(tmp_path)}
    cmd = [tool, "verify", *(["--user"] if scope == "user" else []), str(unit)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr


@pytest.mark.parametrize("scope", ["system", "user"])
def test_the_exposure_score_is_printed_and_within_target(tmp_path, capsys, scope):
    """`systemd-analyze security --offline=true`: the score goes to the test log; target <= 3.0."""
    tool = _systemd_analyze()
    state = Path("/var/lib/endpoint-agent") if scope == "system" else None
    unit = _unit(tmp_path, scope, state)
    env = {"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(tmp_path)}
    cmd = [tool, "security", "--offline=true", *(["--user"] if scope == "user" else []), str(unit)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout)
    assert match, out.stdout + out.stderr
    score = float(match.group(1))
    with capsys.disabled():
        print(
            f"\n== systemd-analyze security --offline=true ({scope} unit): exposure {score} (target <= 3.0)"
        )
    assert score <= EXPOSURE_TARGET


def test_the_system_unit_has_the_listed_hardening(tmp_path):
    """Type=notify and the hardening the issue lists; a system scanner may only read past permissions."""
    settings = _settings(_unit(tmp_path, "system", Path("/var/lib/endpoint-agent")))
    for key, value in HARDENING.items():
        assert value in settings[key], key
    assert settings["StateDirectory"] == ["endpoint-agent"]
    assert settings["CapabilityBoundingSet"] == ["CAP_DAC_READ_SEARCH"]
    assert "KillMode" not in settings  # the default, control-group, stops the bootloader and its child
    assert "MemoryDenyWriteExecute" not in settings  # YARA-X compiles rules to native code
    env = dict(e.split("=", 1) for e in settings["Environment"])
    assert env == {"ENDPOINT_AGENT_HOME": "/var/lib/endpoint-agent", "TMPDIR": "/var/lib/endpoint-agent/tmp"}
    assert settings["WantedBy"] == ["multi-user.target"]


def test_the_user_unit_drops_every_capability_and_writes_only_its_state(tmp_path):
    """Per user: no capabilities, a private user namespace, and the state dir as the one writable path."""
    settings = _settings(_unit(tmp_path, "user"))
    assert settings["CapabilityBoundingSet"] == [""]
    assert settings["PrivateUsers"] == ["yes"]
    assert settings["ReadWritePaths"] == [str(tmp_path / "prefix" / "state")]
    assert "StateDirectory" not in settings
    assert settings["WantedBy"] == ["default.target"]


def test_paths_with_spaces_and_specifiers_are_quoted(tmp_path):
    """A prefix with a space, % and $ stays one word and is not expanded by systemd."""
    unit = _unit(tmp_path, "system", prefix_name="my 100% $prefix")
    exec_start = _settings(unit)["ExecStart"][0]
    assert exec_start.startswith('"') and "100%% $prefix/bin" in exec_start  # $ is literal in the path
    assert "100%% $$prefix/etc" in exec_start  # and escaped in the arguments, where systemd expands it
    tool = shutil.which("systemd-analyze")
    if tool:
        out = subprocess.run(
            [tool, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
        )
        assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("scope", ["system", "user"])
def test_the_launchd_plist_parses_and_runs_the_agent(scope):
    """The plist is valid XML, keeps `endpoint-agent run` alive, at low priority, with its own home."""
    layout = macos_layout(make_layout(scope, None))
    doc = plistlib.loads(launchd_plist(layout))
    assert doc["Label"] == LAUNCHD_LABEL
    assert doc["ProgramArguments"] == [str(layout.binary), "--config", str(layout.config_file), "run"]
    assert doc["EnvironmentVariables"]["ENDPOINT_AGENT_HOME"] == str(layout.state_dir)
    assert doc["RunAtLoad"] is True and doc["KeepAlive"] == {"SuccessfulExit": False}
    assert doc["ProcessType"] == "Background" and doc["LowPriorityIO"] is True
    assert doc["Umask"] == 0o077
    assert ("UserName" in doc) == (scope == "system")
    assert str(layout.unit_file).endswith(f"{LAUNCHD_LABEL}.plist")
    assert str(launchd_plist_path("system")).startswith("/Library/LaunchDaemons/")
    assert "Application Support" in str(layout.config_file)


def test_the_windows_script_registers_a_least_privilege_service():
    """sc.exe create with a quoted binPath, restart on failure, only the privileges a scanner needs."""
    binary, config, state = windows_paths()
    script = windows_service_script(binary, config, state)
    lines = script.split("\r\n")
    assert all(line.startswith(("@echo", "rem ", "sc.exe ", "reg.exe ")) for line in lines if line)
    create = next(line for line in lines if line.startswith("sc.exe create EndpointAgent "))
    bin_path = re.search(r'binPath= "(.*?)" start=', create).group(1)
    assert bin_path == rf"\"{binary}\" --config \"{config}\" run"
    assert binary == PureWindowsPath(r"C:\Program Files\endpoint-agent\endpoint-agent.exe")
    assert "start= delayed-auto" in create and "obj= LocalSystem" in create
    assert "sc.exe privs EndpointAgent SeBackupPrivilege/SeChangeNotifyPrivilege" in lines
    assert any(
        line.startswith("sc.exe failure EndpointAgent reset= 86400 actions= restart/") for line in lines
    )
    env = next(line for line in lines if line.startswith("reg.exe add"))
    assert rf"ENDPOINT_AGENT_HOME={state}\0TMPDIR={state}\tmp" in env


def test_the_unit_command_prints_each_platform_and_writes_nothing(setup_env):
    """`endpoint-agent-setup unit --platform P` prints the definition for the layout, and nothing else."""
    for platform, marker in (("linux", "Type=notify"), ("macos", "<plist"), ("windows", "sc.exe create")):
        out = setup_env.run("unit", "--platform", platform, "--prefix", str(setup_env.prefix), "--user")
        assert out.returncode == 0, out
        assert marker in out.stdout
    assert not setup_env.prefix.exists()
    assert EXAMPLE_ANSWERS.exists()
