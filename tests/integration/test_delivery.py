"""Delivery to the real reference cloud over TLS on loopback: outages, crashes, bad answers, poison."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
import samples
from conftest import run_cli

from agent.errors import ConfigError
from agent.minimize.wire import Record, encode_record
from agent.outbox import Store
from agent.outbox.delivery import Deliverer, DeliverySettings
from agent.upstream import Backoff, ClientSettings, UpstreamClient, tls_context
from cloud.harness import CloudProcess, running_cloud

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cloud(tmp_path_factory) -> Iterator[CloudProcess]:
    with running_cloud(
        tmp_path_factory.mktemp("cloud"), extra_args=("--rate", "1000", "--burst", "5000")
    ) as c:
        yield c


def _token(cloud: CloudProcess) -> str:
    settings = ClientSettings(url=cloud.url, ca_file=str(cloud.ca_file))
    with UpstreamClient(settings) as client:
        return client.enroll(cloud.product_key)


def _client(cloud: CloudProcess, transport: httpx.BaseTransport | None = None, **kw) -> UpstreamClient:
    settings = ClientSettings(url=kw.pop("url", cloud.url), ca_file=str(cloud.ca_file), **kw)
    return UpstreamClient(settings, _token(cloud), transport=transport)


def _record(**over) -> Record:
    return msgspec.convert(samples.wire_record(**over), Record)


def _store_with(tmp_path: Path, records: list[Record]) -> Store:
    store = Store(tmp_path / "agent.db", ruleset="test")
    store.persist([], records)
    return store


def _stored_ids(cloud: CloudProcess) -> list[str]:
    return [r["record_id"] for r in cloud.records()]


def test_enrolled_scan_delivers_its_records_and_logs_what_left(cloud: CloudProcess, tmp_path: Path):
    """enroll, then scan: the detection's record reaches the cloud and ``sent`` shows the exact payload."""
    home = tmp_path / "home"
    out = run_cli(
        "enroll", cloud.url, "--product-key", cloud.product_key, "--ca-file", str(cloud.ca_file),
        "--pin-sha256", cloud.pin, home=home,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert (home / "upstream.token").stat().st_mode & 0o777 == 0o600
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "x.com").write_bytes(samples.eicar())
    scan = run_cli("scan", "--json", str(tmp_path / "tree"), home=home)
    summary = json.loads(scan.stdout.splitlines()[-1])
    assert scan.returncode == 1
    assert summary["delivered"] == 1
    assert summary["queued"] == 0
    record_id = json.loads(scan.stdout.splitlines()[0])["upstream"]["record_id"]
    assert record_id in _stored_ids(cloud)
    sent = [json.loads(line) for line in run_cli("sent", "--json", home=home).stdout.splitlines()]
    assert sent[0]["payload"][0]["record_id"] == record_id
    assert sent[0]["purpose"] == "protection"


def test_no_upload_only_queues(cloud: CloudProcess, tmp_path: Path):
    """--no-upload leaves the records in the outbox."""
    home = tmp_path / "home"
    run_cli(
        "enroll", cloud.url, "--product-key", cloud.product_key, "--ca-file", str(cloud.ca_file), home=home
    )
    (tmp_path / "x.com").write_bytes(samples.eicar())
    scan = run_cli("scan", "--json", "--no-upload", str(tmp_path / "x.com"), home=home)
    summary = json.loads(scan.stdout.splitlines()[-1])
    assert summary["delivered"] is None
    assert summary["queued"] == 1


def test_outage_then_recovery_delivers_every_record_exactly_once(tmp_path: Path):
    """10,000 records queued while the cloud is down all arrive once it is back, none twice."""
    records = [_record() for _ in range(10_000)]
    store = _store_with(tmp_path, records)
    settings = DeliverySettings(batch_max_records=1000, batch_max_bytes=1 << 20)
    with running_cloud(tmp_path / "cloud", extra_args=("--rate", "1000", "--burst", "5000")) as c:
        token = _token(c)
        port, ca = c.port, str(c.ca_file)
    client = UpstreamClient(ClientSettings(url=f"https://127.0.0.1:{port}", ca_file=ca, timeout=2.0), token)
    down = Deliverer(store, client, settings).deliver()
    assert down.sent == 0 and down.error
    assert store.outbox_depth() == 10_000
    with running_cloud(tmp_path / "cloud", port=port) as c:
        report = Deliverer(store, client, settings).deliver_with_retries(time.monotonic() + 120)
        stored = _stored_ids(c)
    client.close()
    assert report.sent == 10_000
    assert sorted(stored) == sorted(r.record_id for r in records)
    assert store.outbox_depth() == 0
    store.close()


_CRASHER = """
import sys, time
from pathlib import Path
from typing import Any
from agent.outbox import Store
from agent.outbox.delivery import Deliverer, DeliverySettings
from agent.upstream import ClientSettings, UpstreamClient
url, ca, token, db = sys.argv[1:5]
store = Store(Path(db))
client = UpstreamClient(ClientSettings(url=url, ca_file=ca), token)
Deliverer(store, client, DeliverySettings(batch_max_records=50)).deliver()
"""


def test_kill_9_mid_delivery_then_restart_loses_and_duplicates_nothing(cloud: CloudProcess, tmp_path: Path):
    """A delivering process killed with SIGKILL, then restarted: each record is stored exactly once."""
    records = [_record() for _ in range(3000)]
    _store_with(tmp_path, records).close()
    token = _token(cloud)
    before = len(cloud.records())
    proc = subprocess.Popen(
        [sys.executable, "-c", _CRASHER, cloud.url, str(cloud.ca_file), token, str(tmp_path / "agent.db")]
    )
    deadline = time.monotonic() + 60
    while len(cloud.records()) - before < 200 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = Store(tmp_path / "agent.db")
    assert 0 < store.outbox_depth() < 3000  # it was killed mid-way
    with _client(cloud) as client:
        Deliverer(store, client, DeliverySettings()).deliver()
    ids = _stored_ids(cloud)
    mine = {r.record_id for r in records}
    assert sorted(i for i in ids if i in mine) == sorted(mine)  # every record once, no duplicate
    assert store.outbox_depth() == 0
    store.close()


def test_one_poisoned_record_is_set_aside_and_the_rest_delivered(cloud: CloudProcess, tmp_path: Path):
    """A record the cloud refuses is isolated by bisection and kept aside with the reason."""
    good = [_record() for _ in range(99)]
    store = _store_with(tmp_path, good)
    bad_id = secrets.token_hex(16)
    bad = encode_record(_record(record_id=bad_id))[:-1] + b',"hostname":"canary-host"}'
    store._db.execute("INSERT INTO outbox VALUES (?, 'protection', ?, ?)", (bad_id, int(time.time()), bad))
    with _client(cloud) as client:
        report = Deliverer(store, client, DeliverySettings(batch_max_records=1000)).deliver()
    assert report.sent == 99
    assert report.poisoned == 1
    assert store.outbox_depth() == 0
    assert store.counter("outbox_poisoned") == 1
    (reason,) = store._db.execute("SELECT reason FROM outbox_poison").fetchone()
    assert "invalid_record" in reason
    assert bad_id not in _stored_ids(cloud)
    store.close()


def test_a_wrong_certificate_is_refused_before_anything_is_sent(cloud: CloudProcess, tmp_path: Path):
    """A pin that does not match, or a CA that did not sign the server, fails the handshake: nothing sent."""
    record = _record()
    store = _store_with(tmp_path, [record])
    token = _token(cloud)
    wrong_pin = UpstreamClient(
        ClientSettings(url=cloud.url, ca_file=str(cloud.ca_file), pins=("A" * 43 + "=",)), token
    )
    report = Deliverer(store, wrong_pin, DeliverySettings()).deliver()
    wrong_pin.close()
    assert report.sent == 0 and "pin" in report.error.lower() + "certificate"
    system_store = UpstreamClient(ClientSettings(url=cloud.url), token)  # the private CA is not trusted
    assert Deliverer(store, system_store, DeliverySettings()).deliver().sent == 0
    system_store.close()
    assert record.record_id not in _stored_ids(cloud)
    assert store.outbox_depth() == 1
    store.close()


def test_plain_http_and_disabled_verification_are_impossible():
    """The client refuses http:// URLs, and a bad CA file is a configuration error."""
    with pytest.raises(ConfigError):
        UpstreamClient(ClientSettings(url="http://127.0.0.1:1"))
    with pytest.raises(ConfigError):
        tls_context(ca_file="/nonexistent/ca.pem")


class _Faults(httpx.BaseTransport):
    """A transport seam in front of the real one: the first answers are faults, then the real cloud."""

    def __init__(self, real: httpx.BaseTransport, faults: list[str]) -> None:
        self.real, self.faults, self.seen = real, faults, 0

    def close(self) -> None:
        self.real.close()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen += 1
        if self.faults:
            fault = self.faults.pop(0)
            if fault == "500":
                return httpx.Response(500, json={"error": "internal"})
            if fault == "429":
                return httpx.Response(429, headers={"Retry-After": "1"}, json={"error": "rate_limited"})
            if fault == "timeout":
                raise httpx.ReadTimeout("slow", request=request)
            if fault == "reset":
                raise httpx.RemoteProtocolError("peer closed connection mid-body", request=request)
        return self.real.handle_request(request)


@pytest.mark.parametrize("faults", [["500", "500"], ["429"], ["timeout"], ["reset", "500", "timeout"]])
def test_bad_answers_are_retried_with_backoff_until_delivered(cloud: CloudProcess, tmp_path: Path, faults):
    """5xx, 429 with Retry-After, timeouts and resets: the records stay queued and arrive once later."""
    records = [_record() for _ in range(20)]
    store = _store_with(tmp_path, records)
    real = httpx.HTTPTransport(verify=tls_context(str(cloud.ca_file)))
    transport = _Faults(real, list(faults))
    slept: list[float] = []
    with _client(cloud, transport=transport) as client:
        deliverer = Deliverer(
            store, client, DeliverySettings(), backoff=Backoff(base=0.01, cap=0.05), sleep=slept.append
        )
        report = deliverer.deliver_with_retries(time.monotonic() + 60)
    assert report.sent == 20
    assert len(slept) == len(faults)
    if "429" in faults:
        assert max(slept) == 0.05  # Retry-After (1 s) is honoured up to the cap
    assert {r.record_id for r in records} <= set(_stored_ids(cloud))
    store.close()


def test_outbox_bounds_drop_the_oldest_and_count_it(tmp_path: Path):
    """Past max records or max age, the oldest records are dropped and the drop is counted."""
    store = _store_with(tmp_path, [_record() for _ in range(50)])
    store._db.execute(
        "UPDATE outbox SET created = created - 10000 WHERE rowid IN (SELECT rowid FROM outbox LIMIT 5)"
    )
    assert store.enforce_bounds(max_records=40, max_age=5000) == 10
    assert store.outbox_depth() == 40
    assert store.counter("outbox_dropped") == 10
    store.close()


def test_the_service_delivers_continuously(cloud: CloudProcess, tmp_path: Path):
    """A running service sends the record of an on-access detection without any other step."""
    from service_proc import ServiceProcess

    home, root = tmp_path / "home", tmp_path / "root"
    root.mkdir()
    out = run_cli(
        "enroll", cloud.url, "--product-key", cloud.product_key, "--ca-file", str(cloud.ca_file), home=home
    )
    assert out.returncode == 0, out.stderr
    extra = (
        f'[watch]\nroots = ["{root}"]\nsettle = 0.2\nsweep_interval = 0.0\n'
        "[programs]\nenabled = false\n[service]\nnice = 0\ndefer_when_busy = false\n"
    )
    config = (home / "agent.toml").read_text().replace("[upstream]\n", "[upstream]\nflush_interval = 0.3\n")
    with ServiceProcess(home, config + extra) as svc:
        svc.wait_for("READY=1")
        (root / "x.com").write_bytes(samples.eicar())
        info = svc.wait_status(lambda s: s.get("delivery", {}).get("sent", 0) >= 1)
        assert info["outbox_depth"] == 0
        assert svc.stop() == 0
    assert any(r["verdict"] == "malicious" for r in cloud.records())


def test_enrolling_while_the_service_runs_says_to_restart_it(cloud: CloudProcess, tmp_path: Path):
    """The service reads [upstream] when it starts: enroll says so instead of leaving records stuck."""
    from service_proc import ServiceProcess

    home, root = tmp_path / "home", tmp_path / "root"
    root.mkdir()
    config = (
        f'[watch]\nroots = ["{root}"]\nsweep_interval = 0.0\n[programs]\nenabled = false\n'
        "[service]\nnice = 0\ndefer_when_busy = false\n"
    )
    home.mkdir()
    with ServiceProcess(home, config) as svc:
        svc.wait_for("READY=1")
        out = run_cli(
            "enroll",
            cloud.url,
            "--product-key",
            cloud.product_key,
            "--ca-file",
            str(cloud.ca_file),
            home=home,
        )
        assert out.returncode == 0, out.stderr
        assert b"restart it to use these" in out.stdout
        assert svc.stop() == 0
    out = run_cli(
        "enroll", cloud.url, "--product-key", cloud.product_key, "--ca-file", str(cloud.ca_file), home=home
    )
    assert out.returncode == 0, out.stderr
    assert b"restart" not in out.stdout  # no service running: nothing to restart
