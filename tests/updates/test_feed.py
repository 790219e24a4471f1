"""The rules feed on the real cloud: publish, ETag and 304, Minimum-Wait, and the agent's poller."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import socket
import ssl
import threading

import httpx
import pytest

from agent.config import Config, UpstreamConfig
from agent.updates import RulesPoller, fetch_latest, fetch_url, installed_rules_dir, rules_client, status
from cloud.harness import running_cloud

pytest_plugins = ["update_fixtures"]


VERSIONS = itertools.count(100)  # one cloud per module: each test publishes above the last


def _checked(running) -> None:
    assert running.process.returncode == 0
    events = [json.loads(line) for line in running.log_file.read_text().splitlines()]
    assert [e for e in events if e.get("level") != "info"] == [], "the cloud logged warnings or errors"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    """The real cloud over TLS on a loopback port, shared by this module's tests."""
    with running_cloud(tmp_path_factory.mktemp("cloud")) as running:
        yield running
    _checked(running)


def _config(cloud, state_dir) -> Config:
    upstream = UpstreamConfig(url=cloud.url, ca_file=str(cloud.ca_file), pin_sha256=(cloud.pin,))
    return Config(state_dir=state_dir, config_file=state_dir / "agent.toml", upstream=upstream)


@pytest.fixture
def config(cloud, state_dir) -> Config:
    """An agent config pointing at the cloud, trusting its CA and pinning its key."""
    return _config(cloud, state_dir)


@pytest.fixture
def version() -> int:
    """A bundle version above every one published so far in this module."""
    return next(VERSIONS)


def publish(cloud, forge, data: bytes, minimum_wait: int = 60, check: bool = True):
    path = forge.write(data, f"publish-{len(list(forge.tmp.glob('publish-*')))}.tar.gz")
    return cloud.cli(
        "publish-rules", str(path), "--db", str(cloud.db), "--minimum-wait", str(minimum_wait), check=check
    )


def test_latest_answers_404_then_the_bundle_then_304(tmp_path, forge, state_dir):
    """Nothing published is a 404; then the bundle with its ETag; the same ETag gets a 304."""
    with running_cloud(tmp_path / "fresh-cloud") as cloud, rules_client(_config(cloud, state_dir)) as client:
        assert fetch_latest(client, None, 1 << 20).body is None
        first = forge.bundle(1)
        assert publish(cloud, forge, first, 120).stdout.strip() == "rules version 1 published"
        got = fetch_latest(client, None, 1 << 20)
        assert (got.body, got.minimum_wait) == (first, 120.0)
        assert got.etag and got.etag.startswith('"')
        again = fetch_latest(client, got.etag, 1 << 20)
        assert (again.body, again.etag, again.minimum_wait) == (None, got.etag, 120.0)
        second = forge.bundle(2)
        publish(cloud, forge, second)
        newer = fetch_latest(client, got.etag, 1 << 20)
        assert newer.body == second
        assert newer.etag != got.etag
    _checked(cloud)


def test_the_feed_needs_no_token_and_speaks_plain_http_caching(cloud, forge, version):
    """Without a token: 200 with ETag, Rules-Version, Minimum-Wait; W/ and * in If-None-Match give 304."""
    publish(cloud, forge, forge.bundle(version), 30)
    tls = ssl.create_default_context(cafile=str(cloud.ca_file))
    with httpx.Client(base_url=cloud.url, verify=tls, timeout=30) as http:
        full = http.get("/v1/rules/latest")
        assert full.status_code == 200
        assert full.headers["content-type"] == "application/gzip"
        assert (full.headers["rules-version"], full.headers["minimum-wait"]) == (str(version), "30")
        etag = full.headers["etag"]
        for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            cached = http.get("/v1/rules/latest", headers={"If-None-Match": header})
            assert (cached.status_code, cached.content, cached.headers["etag"]) == (304, b"", etag)
        assert http.get("/v1/rules/latest", headers={"If-None-Match": '"other"'}).status_code == 200


def test_publishing_refuses_old_versions_and_non_bundles(cloud, forge, version):
    """The feed only moves forward, and only takes files that carry a bundle manifest."""
    publish(cloud, forge, forge.bundle(version))
    old = publish(cloud, forge, forge.bundle(version), check=False)
    assert old.returncode == 1
    assert f"not above {version}" in old.stderr
    junk = publish(cloud, forge, b"\x1f\x8b not a bundle", check=False)
    assert junk.returncode == 1
    assert "not a rule bundle" in junk.stderr


def test_poller_installs_then_honours_minimum_wait_and_etag(cloud, forge, config, state_dir, version):
    """A poll installs the new bundle and reports it; the next poll gets a 304; waits respect Minimum-Wait."""
    publish(cloud, forge, forge.bundle(version), 500)
    installed: list = []
    settings = forge.settings(poll_interval=10.0, poll_jitter=0.0)
    poller = RulesPoller(lambda: rules_client(config), state_dir, settings, installed.append)
    assert poller.poll_once() == 500.0
    assert [i.version for i in installed] == [version]
    assert installed_rules_dir(state_dir) == state_dir / "rules" / str(version)
    assert poller.poll_once() == 500.0
    assert len(installed) == 1


def test_poller_remembers_a_refused_bundle(cloud, forge, config, state_dir, version):
    """A bundle refused once (here: a stale one) is not installed, and its ETag stops a re-download."""
    stale = forge.bundle(version, created=dt.datetime.now(dt.UTC) - dt.timedelta(days=30))
    publish(cloud, forge, stale, 0)
    installed: list = []
    poller = RulesPoller(
        lambda: rules_client(config),
        state_dir,
        forge.settings(poll_interval=1.0, poll_jitter=0.0),
        installed.append,
    )
    assert poller.poll_once() == 1.0
    feed = json.loads((state_dir / "rules" / "feed.json").read_text())
    tls = ssl.create_default_context(cafile=str(cloud.ca_file))
    with httpx.Client(base_url=cloud.url, verify=tls, timeout=30) as http:
        assert feed["etag"] == http.get("/v1/rules/latest").headers["etag"]
    assert installed == []
    assert status(state_dir).current is None


def test_poller_backs_off_when_the_cloud_is_down(forge, state_dir):
    """An unreachable cloud costs one logged poll and the normal interval, never an exception."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before the poll: nothing listens there
    upstream = UpstreamConfig(url=f"https://127.0.0.1:{port}", timeout=5.0)
    config = Config(state_dir=state_dir, config_file=state_dir / "agent.toml", upstream=upstream)
    poller = RulesPoller(
        lambda: rules_client(config),
        state_dir,
        forge.settings(poll_interval=42.0, poll_jitter=0.0),
        lambda _installed: None,
    )
    assert poller.poll_once() == 42.0


def test_poller_thread_installs_and_stops(cloud, forge, config, state_dir, version):
    """Started as the service would start it, the poller installs the bundle and stops on request."""
    publish(cloud, forge, forge.bundle(version))
    done = threading.Event()
    settings = forge.settings(poll_interval=3600.0, poll_jitter=0.0)
    poller = RulesPoller(lambda: rules_client(config), state_dir, settings, lambda _installed: done.set())
    poller.start()
    try:
        assert done.wait(60), "the poller did not install the bundle"
    finally:
        poller.stop()
    assert installed_rules_dir(state_dir) == state_dir / "rules" / str(version)


def test_update_from_a_url(cloud, forge, config, version):
    """`rules update URL` fetches over pinned TLS: a bare cloud URL means its newest bundle."""
    data = forge.bundle(version)
    publish(cloud, forge, data)
    assert fetch_url(cloud.url, config, 1 << 20) == data
    assert fetch_url(cloud.url + "/v1/rules/latest", config, 1 << 20) == data
