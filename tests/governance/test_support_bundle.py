"""support-bundle: written when clean, refused (nothing written) when anything personal or secret is in it."""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import canary
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import config
from agent.control import ControlServer
from agent.governance.analytics import Analytics
from agent.governance.support import ROOT, BundleRefused, check, write_bundle
from agent.minimize import MasterSecret

TOKEN = "Zx9" + "k" * 40  # the shape of a real token (43 url-safe characters)
CLEAN_LOG = '{"event": "scan_finished", "verdict": "clean", "duration_ms": 3.2, "level": "debug"}\n'


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short directory for the control socket (Unix socket paths are limited to about 100 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="sb-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.fixture
def cfg(agent_home, short_dir) -> config.Config:
    """An enrolled-looking install: config with paths and keys, a token file, the master key, a clean log."""
    agent_home.mkdir(parents=True)
    (agent_home / "agent.toml").write_text(
        "[upstream]\n"
        'url = "https://cloud.example.net:8443"\n'
        f'ca_file = "{agent_home}/ca.pem"\n'
        'prefix_key = "MCowBQYDK2VwAyEAq1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c="\n'
        "[watch]\n"
        f'roots = ["{agent_home}/Documents", "/srv/share"]\n'
        f'exclude = ["{agent_home}/private/*"]\n'
        "[service]\n"
        f'control_socket = "{short_dir}/c.sock"\n'
    )
    token = agent_home / "upstream.token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    MasterSecret.load_or_create(agent_home)
    with Analytics.open(agent_home) as analytics:  # an agent.db with the store's tables and some counts
        analytics.count_run()
    (agent_home / "logs").mkdir()
    (agent_home / "logs" / "agent-2026-05-04.log").write_text(CLEAN_LOG)
    return config.load()


def _members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path, "r:gz") as tar:
        return {info.name: info for info in tar.getmembers()}


def _content(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes())


def test_a_clean_install_gets_its_bundle(cfg, tmp_path):
    """The bundle holds manifest, versions, config, status, counts and the log; 0600; anonymous tar entries."""
    out = tmp_path / "bundle.tar.gz"
    written = write_bundle(cfg, out)
    assert written.path == out
    assert out.stat().st_mode & 0o777 == 0o600
    names = sorted(_members(out))
    expected = [
        "manifest.json",
        "version.json",
        "config.json",
        "status.json",
        "counts.json",
        "logs/log-1.txt",
    ]
    assert names == sorted(f"{ROOT}/{n}" for n in expected)
    for info in _members(out).values():
        assert (info.uid, info.gid, info.uname, info.gname, info.mode) == (0, 0, "", "", 0o600)
    header = out.read_bytes()[:10]
    assert header[3] & 0x08 == 0, "the gzip header must not carry a file name"
    with tarfile.open(out, "r:gz") as tar:
        docs = {n: tar.extractfile(f"{ROOT}/{n}").read() for n in expected}
    assert docs["logs/log-1.txt"].decode() == CLEAN_LOG
    assert json.loads(docs["status.json"])["running"] is False
    assert json.loads(docs["counts.json"])["store"]["outbox_depth"] == 0
    manifest = json.loads(docs["manifest.json"])
    assert [m["name"] for m in manifest["members"]] == expected[1:]


def test_the_config_keeps_settings_and_drops_paths_urls_and_keys(cfg, tmp_path):
    """Paths, URLs and key options read '<set>'; ordinary settings are kept as they are."""
    out = tmp_path / "bundle.tar.gz"
    write_bundle(cfg, out)
    with tarfile.open(out, "r:gz") as tar:
        doc = json.loads(tar.extractfile(f"{ROOT}/config.json").read())
    assert doc["upstream"]["url"] == "<set>"
    assert doc["upstream"]["ca_file"] == "<set>"
    assert doc["upstream"]["prefix_key"] == "<set>"
    assert doc["watch"]["roots"] == "<2 set>"
    assert doc["watch"]["exclude"] == "<1 set>"
    assert doc["service"]["control_socket"] == "<set>"
    assert doc["upstream"]["token_file"] == ""
    assert doc["privacy"]["pseudonym_period"] == "month"
    assert doc["watch"]["exclude_extensions"] == [".part", ".crdownload", ".swp"]
    assert doc["limits"]["max_recursion"] == 16


def test_the_bundle_holds_no_secret_of_the_install(cfg, tmp_path):
    """Neither the master key (raw, hex, base64) nor the upstream token appears in the file, in any form."""
    out = tmp_path / "bundle.tar.gz"
    write_bundle(cfg, out)
    key = (cfg.state_dir / "master.key").read_bytes()
    blobs = [out.read_bytes(), _content(out)]
    for blob in blobs:
        assert key not in blob
        assert key.hex().encode() not in blob
        assert base64.b64encode(key)[:40] not in blob
        assert canary.find(blob, [TOKEN]) == []
        assert b"cloud.example.net" not in blob


def test_a_running_service_status_is_included(cfg, tmp_path):
    """With the service answering on its control socket, its status is the bundle's status.json."""
    server = ControlServer(
        Path(cfg.service.control_socket), {"STATUS": lambda: {"running": True, "queue_depth": 3}}
    )
    server.start()
    try:
        out = tmp_path / "bundle.tar.gz"
        write_bundle(cfg, out)
    finally:
        server.close()
    with tarfile.open(out, "r:gz") as tar:
        assert json.loads(tar.extractfile(f"{ROOT}/status.json").read()) == {
            "running": True,
            "queue_depth": 3,
        }


def _refused(cfg, tmp_path, **kwargs) -> BundleRefused:
    out = tmp_path / "out" / "bundle.tar.gz"
    out.parent.mkdir(exist_ok=True)
    with pytest.raises(BundleRefused) as caught:
        write_bundle(cfg, out, **kwargs)
    assert os.listdir(out.parent) == [], "nothing may be written, not even a temporary file"
    return caught.value


@pytest.mark.parametrize(
    ("planted", "kind"),
    [
        ("login by {c}@example.org failed", "email"),
        ("cannot open /home/{c}/Documents/tax-return.pdf", "path"),
        ("cannot open C:\\\\Users\\\\{c}\\\\Desktop\\\\a.txt", "path"),
        ("cannot open ~/{c}.txt", "path"),
        ("iban DE89370400440532013000 for {c}", "iban"),
    ],
)
def test_a_log_with_personal_data_refuses_the_bundle(cfg, tmp_path, planted, kind):
    """A canary planted in a log stops the bundle; the refusal names the kind and member, never the value."""
    value = canary.make("sb")
    (cfg.state_dir / "logs" / "later.log").write_text(CLEAN_LOG + planted.format(c=value) + "\n")
    refusal = _refused(cfg, tmp_path)
    assert kind in {f.kind for f in refusal.findings}
    assert all(f.member.startswith("logs/") for f in refusal.findings)
    assert value not in str(refusal)
    assert "example.org" not in str(refusal)


def test_the_users_name_or_host_name_refuses_the_bundle(cfg, tmp_path):
    """A log line naming the local user or host is refused as such."""
    (cfg.state_dir / "logs" / "later.log").write_text("started by zqxalice on zqx-laptop\n")
    refusal = _refused(cfg, tmp_path, literals={"user name": "zqxalice", "host name": "zqx-laptop"})
    assert {f.kind for f in refusal.findings} == {"user name", "host name"}


def test_the_real_local_names_are_checked(cfg, tmp_path):
    """Without test literals, this machine's own home directory in a log stops the bundle."""
    (cfg.state_dir / "logs" / "later.log").write_text(f"home is {Path.home()} \n")
    assert {f.kind for f in _refused(cfg, tmp_path).findings} >= {"path"}


def test_a_leaked_token_refuses_the_bundle(cfg, tmp_path):
    """A log that somehow holds the install's token is refused as a secret."""
    (cfg.state_dir / "logs" / "later.log").write_text(f"auth header value {TOKEN}\n")
    assert "secret" in {f.kind for f in _refused(cfg, tmp_path).findings}


def test_an_extra_log_file_is_checked_too(cfg, tmp_path):
    """A file passed with --log is included only if it is clean."""
    extra = tmp_path / "journal.txt"
    extra.write_text("mail to someone.else@example.com bounced\n")
    refusal = _refused(cfg, tmp_path, extra_logs=[extra])
    assert {(f.kind, f.member) for f in refusal.findings} == {("email", "logs/log-2.txt")}
    extra.write_text(CLEAN_LOG)
    assert len(write_bundle(cfg, tmp_path / "ok.tar.gz", extra_logs=[extra]).members) == 7


def test_a_status_holding_personal_data_refuses_the_bundle(cfg, tmp_path):
    """A status answer that leaks an address is caught like any other member."""
    status = {"running": True, "note": "last error for jane.doe@example.com"}
    refusal = _refused(cfg, tmp_path, status=status)
    assert {(f.kind, f.member) for f in refusal.findings} == {("email", "status.json")}


_component = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789_.-", min_size=1, max_size=12
).filter(lambda c: c not in {".", ".."})


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["/", "~/", "C:\\", "\\\\"]),
    st.lists(_component, min_size=1, max_size=5),
    st.text(alphabet=" =:(\"'\t[", min_size=1, max_size=3),
    st.text(alphabet="abcdefghij ", max_size=30),
)
def test_any_planted_path_is_found(root, parts, before, prose):
    """Wherever an absolute or home-relative path stands after a separator, check() reports a path."""
    sep = "\\" if root in ("C:\\", "\\\\") else "/"
    planted = f"{prose}{before}{root}{sep.join(parts)} done"
    findings = check({"logs/log-1.txt": planted.encode()}, literals={})
    assert ("path", "logs/log-1.txt") in {(f.kind, f.member) for f in findings}


def test_plain_words_rates_and_versions_are_not_paths_but_urls_are_refused():
    """Media types, rates, fractions and version strings pass; a URL (its host or path may name someone) does not."""
    text = "application/json 12 MB/s 3/4 endpoint-agent/0.1.0 N/A and/or"
    assert check({"x.txt": text.encode()}, literals={}) == []
    found = check({"x.txt": b"fetched https://cloud.example.net/v1/u/someone"}, literals={})
    assert "url" in {f.kind for f in found}
