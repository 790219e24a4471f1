"""Run the frozen binaries the way a user would: ``python build/selftest.py [DIST]``.

DIST defaults to ``build/dist``. Each check runs ``DIST/endpoint-agent`` with its own
``ENDPOINT_AGENT_HOME`` in a temp dir, so nothing of the user's state is touched. Samples (EICAR, a
zip, a PDF, a DOCX) are generated at run time; EICAR is joined from parts so no file holds it whole.
A check the build cannot run yet (the clamd socket before the service serves one, the setup binary
before ``installer/`` exists) is SKIPPED loudly, never passed. Exits 1 when any check failed.

``--agent-cmd "python -m agent"`` runs the same checks against the source tree instead: that is how
``tests/test_build.py`` proves the checks themselves pass without a build.
"""

# ruff: noqa: INP001, T201
# (build/ is a folder of standalone scripts, not a package; a self-test prints its report.)

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selftest_support import (
    TIMEOUT,
    CheckFailed,
    CheckSkipped,
    clamd_call,
    eicar,
    expect,
    run_command,
    sample_tree,
    stop_group,
)

ROOT = Path(__file__).resolve().parent.parent
_EICAR_RULE = "EICAR_Test_File"
_CLAMD_IMPORT = re.compile(  # does agent/service.py wire the clamd socket (so it must be there)?
    r"^\s*(from|import)\s+agent\.sources(\.clamd\b|\s+import\b.*clamd)", re.MULTILINE | re.IGNORECASE
)


# ---------------------------------------------------------------- running the binary
@dataclass(slots=True)
class Runner:
    """Runs the agent command with a private home; collects what each check did."""

    agent: list[str]
    work: Path
    results: list[tuple[str, str, str]] = field(default_factory=list)

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        """The environment of one command: the caller's, with a private agent home."""
        home.mkdir(parents=True, exist_ok=True)
        return {**os.environ, "ENDPOINT_AGENT_HOME": str(home), **extra}

    def run(self, *args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run the agent with ``args`` and wait (with a hang guard)."""
        return run_command([*self.agent, *args], self.env(home or self.work / "home"))

    def scan(self, *paths: Path, jobs: int = 2) -> tuple[int, list[dict[str, Any]], dict[str, Any]]:
        """``scan --json`` the paths; return the exit code, the per-object lines and the summary."""
        out = self.run("scan", "--json", "--no-upload", "--no-cache", "--jobs", str(jobs), *map(str, paths))
        lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
        summaries = [line for line in lines if line.get("summary")]
        if len(summaries) != 1:
            raise CheckFailed(f"no summary line (exit {out.returncode}); stderr:\n{out.stderr[-2000:]}")
        return out.returncode, [line for line in lines if not line.get("summary")], summaries[0]

    def check(self, name: str, fn: Callable[[], str]) -> None:
        """Run one check and record PASS, FAIL or SKIPPED with its detail."""
        started = time.monotonic()
        try:
            status, detail = "PASS", fn()
        except CheckSkipped as exc:
            status, detail = "SKIPPED", str(exc)
        except (CheckFailed, OSError, subprocess.SubprocessError, ValueError) as exc:
            status, detail = "FAIL", f"{type(exc).__name__}: {exc}"
        self.results.append((name, status, detail))
        banner = "!!!!!!!! " if status != "PASS" else ""
        print(f"{banner}[{status}] {name} ({time.monotonic() - started:.1f} s): {detail}", flush=True)


def _expected_version() -> str:
    text = (ROOT / "agent" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    return match.group(1) if match else ""


# ---------------------------------------------------------------- the checks
def check_version(r: Runner) -> str:
    """``--version`` prints the source tree's version and exits 0."""
    out = r.run("--version")
    want = f"endpoint-agent {_expected_version()}"
    expect(out.returncode == 0 and out.stdout.strip() == want, f"got {out.returncode} {out.stdout!r}")
    return out.stdout.strip()


def check_eicar(r: Runner) -> str:
    """EICAR: exit 1, malicious, named by the YARA-X rule, and the engine knows its yara-x release."""
    path = r.work / "eicar" / "eicar.com"
    path.parent.mkdir()
    path.write_bytes(eicar())
    code, (obj, *rest), _ = r.scan(path, jobs=1)
    names = {d["name"] for d in obj["detections"] if d["source"] == "yara"}
    expect(code == 1 and not rest and obj["verdict"] == "malicious", f"exit {code}, {obj}")
    expect(_EICAR_RULE in names, f"YARA-X did not name {_EICAR_RULE}: {obj['detections']}")
    engine = (obj.get("upstream") or {}).get("engine_version", "")
    expect(engine and not engine.endswith("/unknown"), f"engine version without yara-x: {engine!r}")
    return f"exit 1, detections {sorted(d['name'] for d in obj['detections'])}, {engine}"


def check_clean(r: Runner) -> str:
    """A clean file: exit 0, verdict clean."""
    path = r.work / "clean" / "hello.txt"
    path.parent.mkdir()
    path.write_text("hello, world\n")
    code, objs, _ = r.scan(path, jobs=1)
    expect(code == 0 and [o["verdict"] for o in objs] == ["clean"], f"exit {code}, {objs}")
    return "exit 0, clean"


def check_tree(r: Runner) -> str:
    """A directory on two spawn workers: every file answered, the right ones found, PII counted."""
    root = r.work / "tree"
    expected = sample_tree(root)
    code, objs, summary = r.scan(root, jobs=2)
    got = {Path(o["path"]).relative_to(root).as_posix(): o for o in objs}
    expect(code == 1, f"exit {code}, summary {summary}")
    expect(set(got) == set(expected), f"objects differ: missing {set(expected) - set(got)}")
    wrong = {rel: got[rel]["verdict"] for rel, want in expected.items() if got[rel]["verdict"] != want}
    expect(not wrong, f"wrong verdicts: {wrong}")
    pii = got["docs/contact.txt"]["personal_data"]
    expect({"phone", "iban", "email"} <= set(pii), f"phonenumbers/stdnum data missing: {pii}")
    for rel in ("docs/letter.pdf", "docs/letter.docx"):
        expect("email" in got[rel]["personal_data"], f"no text from {rel}: {got[rel]}")
    return (
        f"exit 1, {len(got)} objects, verdicts {summary['verdicts']}, {summary['files_per_second']} files/s"
    )


def check_config(r: Runner) -> str:
    """``config show`` names the private home; ``config example`` renders."""
    home = r.work / "home"
    show, example = r.run("config", "show"), r.run("config", "example")
    expect(show.returncode == 0 and f"# state dir:   {home}" in show.stdout, f"show: {show}")
    expect(example.returncode == 0 and "[clamd]" in example.stdout, f"example: {example.returncode}")
    return "show and example exit 0"


def check_consent(r: Runner) -> str:
    """``consent show`` reads the bundled purposes.toml and renders every purpose."""
    out = r.run("consent", "show")
    if out.returncode == 2 and "invalid choice" in out.stderr:
        raise CheckSkipped("NOT WIRED YET: this build has no 'consent' command")
    expect(out.returncode == 0, f"exit {out.returncode}; stderr:\n{out.stderr[-2000:]}")
    purposes = re.findall(r"^(\w+): (?:ON|OFF)$", out.stdout, re.MULTILINE)
    expect("protection" in purposes, f"no purposes rendered: {out.stdout[:500]!r}")
    return f"exit 0, purposes {purposes}"


_SERVICE_TOML = """
[watch]
roots = [{root}]
sweep_interval = 0.0
settle = 0.1

[programs]
enabled = false
"""


@contextmanager
def _service(r: Runner, home: Path) -> Iterator[tuple[subprocess.Popen[bytes], socket.socket]]:
    """Start ``endpoint-agent run`` with an sd_notify socket, as systemd does; kill it if left running."""
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(home / "notify.sock"))
    with notify, (home / "service.log").open("wb") as log:
        env = r.env(home, NOTIFY_SOCKET=str(home / "notify.sock"))
        cmd = [*r.agent, "run"]
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            yield proc, notify
        finally:
            stop_group(proc)


def _wait_ready(proc: subprocess.Popen[bytes], notify: socket.socket, home: Path) -> None:
    """Wait for ``READY=1`` on the notify socket; fail with the service log if it exits first."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        notify.settimeout(1.0)
        try:
            if b"READY=1" in notify.recv(4096):
                return
        except TimeoutError:
            continue
    log = (home / "service.log").read_text(errors="replace")[-3000:]
    raise CheckFailed(f"no READY=1 (exit {proc.poll()}); log:\n{log}")


def _wait_status(r: Runner, home: Path, predicate: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    """Poll ``status --json`` until ``predicate`` holds (hang guard: TIMEOUT)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        out = r.run("status", "--json", home=home)
        info: dict[str, Any] = json.loads(out.stdout) if out.stdout.startswith("{") else {}
        if predicate(info):
            return info
        if time.monotonic() > deadline:
            raise CheckFailed(f"status never matched: {info or out}")
        time.sleep(0.2)


def check_clamd(home: Path) -> str:
    """Check clamd ``PING`` and ``INSTREAM`` (EICAR found, clean OK) over the service's Unix socket."""
    path = home / "clamd.sock"
    if not path.exists():
        if _CLAMD_IMPORT.search((ROOT / "agent" / "service.py").read_text()):
            raise CheckFailed(f"agent/service.py wires clamd, but the service has no socket at {path}")
        raise CheckSkipped("NOT WIRED YET: agent/service.py does not import agent.sources.clamd; no socket")
    expect(clamd_call(path, "PING") == "PONG", "PING did not answer PONG")
    found = clamd_call(path, "INSTREAM", eicar())
    expect(re.fullmatch(r"stream: \S*(?i:eicar)\S* FOUND", found), f"INSTREAM EICAR: {found!r}")
    clean = clamd_call(path, "INSTREAM", b"hello, world\n" * 1000)
    expect(clean == "stream: OK", f"INSTREAM clean: {clean!r}")
    return f"PONG; {found!r}; {clean!r}"


def check_service(r: Runner) -> str:
    """``run``: READY, status, on-access detection, clamd socket, SIGHUP reload, then SIGTERM and exit 0."""
    home, watched = r.work / "service", r.work / "watched"
    watched.mkdir()
    r.env(home)
    (home / "agent.toml").write_text(_SERVICE_TOML.format(root=json.dumps(str(watched))))
    with _service(r, home) as (proc, notify):
        _wait_ready(proc, notify, home)
        _wait_status(r, home, lambda s: s.get("running"))
        (watched / "dropped.com").write_bytes(eicar())
        info = _wait_status(r, home, lambda s: s.get("scanned", {}).get("on_access"))
        expect(info.get("detections", {}).get("on_access"), f"on-access scan found nothing: {info}")
        r.check("clamd PING + INSTREAM", lambda: check_clamd(home))
        proc.send_signal(signal.SIGHUP)  # the one-file bootloader must pass signals on to Python
        _wait_log(proc, home, '"rules_reloaded"')
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(TIMEOUT)
    expect(code == 0, f"exit {code} after SIGTERM")
    return "READY=1, status running, on-access detection, SIGHUP reload, exit 0 on SIGTERM"


def _wait_log(proc: subprocess.Popen[bytes], home: Path, needle: str) -> None:
    """Wait until the service log holds ``needle``; fail if the service exits or the guard runs out."""
    deadline = time.monotonic() + TIMEOUT
    while needle not in (log := (home / "service.log").read_text(errors="replace")):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise CheckFailed(f"no {needle} in the service log (exit {proc.poll()}):\n{log[-3000:]}")
        time.sleep(0.1)


_GUESSED_ANSWERS = """
country = "DE"
age_attested_by = "organisation"
attestation = "The administrator confirms that every user of this managed device is an adult employee."

[purposes]
threat_research = false
product_analytics = false
"""


def check_setup(r: Runner, setup: tuple[list[str], str], answers: Path | None) -> str:
    """``endpoint-agent-setup --dry-run --unattended ANSWERS --prefix P`` exits 0 and writes nothing."""
    command, missing = setup
    if not command:
        raise CheckSkipped(missing)
    if answers is None:
        shipped = sorted(ROOT.glob("installer/**/*answers*.toml"))
        answers = shipped[0] if shipped else r.work / "answers.toml"
        if not shipped:
            answers.write_text(_GUESSED_ANSWERS)
    prefix, home = r.work / "prefix", r.work / "setup-home"
    env = r.env(home / "agent", HOME=str(home))
    cmd = [*command, "--dry-run", "--unattended", str(answers), "--prefix", str(prefix)]
    out = run_command(cmd, env)
    expect(out.returncode == 0, f"exit {out.returncode}; stderr:\n{out.stderr[-2000:]}")
    written = [p for p in (*prefix.rglob("*"), *home.rglob("*")) if p.is_file()]
    expect(not written, f"--dry-run wrote {written}")
    return f"exit 0 with {answers.name}; {len(out.stdout.splitlines())} lines of plan, nothing written"


def _setup_command(args: argparse.Namespace) -> tuple[list[str], str]:
    """The setup command to test, or why there is none."""
    if args.setup_cmd:
        return shlex.split(args.setup_cmd), ""
    if args.agent_cmd:
        return [], "testing the source tree (--agent-cmd) without --setup-cmd"
    binary = args.dist.resolve() / "endpoint-agent-setup"
    if binary.is_file():
        return [str(binary)], ""
    return [], f"no {binary.name} in {args.dist} (it is built once installer/__main__.py exists)"


def run_main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run every check, print the summary; return the exit status."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("dist", nargs="?", type=Path, default=ROOT / "build" / "dist")
    parser.add_argument("--agent-cmd", help="command to test instead of DIST/endpoint-agent (shell words)")
    parser.add_argument("--setup-cmd", help="command to test instead of DIST/endpoint-agent-setup")
    parser.add_argument("--answers", type=Path, help="answers file for endpoint-agent-setup --unattended")
    args = parser.parse_args(argv)
    agent = shlex.split(args.agent_cmd) if args.agent_cmd else [str(args.dist.resolve() / "endpoint-agent")]
    if not args.agent_cmd and not Path(agent[0]).is_file():
        print(f"selftest: no binary at {agent[0]}; run build/build.py first", file=sys.stderr)
        return 1
    setup = _setup_command(args)
    with tempfile.TemporaryDirectory(prefix="ea-selftest-") as tmp:
        r = Runner(agent=agent, work=Path(tmp))
        r.check("version", lambda: check_version(r))
        r.check("scan eicar", lambda: check_eicar(r))
        r.check("scan clean file", lambda: check_clean(r))
        r.check("scan directory (spawn worker pool)", lambda: check_tree(r))
        r.check("config show", lambda: check_config(r))
        r.check("consent show (bundled purposes)", lambda: check_consent(r))
        r.check("service run + SIGTERM", lambda: check_service(r))
        r.check("endpoint-agent-setup --dry-run --unattended", lambda: check_setup(r, setup, args.answers))
    return _summary(r.results)


def _summary(results: list[tuple[str, str, str]]) -> int:
    failed = [name for name, status, _ in results if status == "FAIL"]
    skipped = [name for name, status, _ in results if status == "SKIPPED"]
    print(f"== selftest: {len(results) - len(failed) - len(skipped)} passed, {len(failed)} failed", end="")
    print(f", {len(skipped)} SKIPPED: {skipped}" if skipped else "")
    if failed:
        print(f"== selftest FAILED: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run_main())
