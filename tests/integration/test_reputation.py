"""Private hash-prefix reputation against the real cloud: local checks, decoys, signatures, rollback."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import run_cli

from agent.errors import UpstreamError
from agent.upstream import (
    ClientSettings,
    PrefixList,
    Reputation,
    UpstreamClient,
    tls_context,
    verify_prefix_envelope,
)
from cloud.harness import CloudProcess, running_cloud

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cloud(tmp_path_factory) -> Iterator[CloudProcess]:
    with running_cloud(tmp_path_factory.mktemp("rep-cloud")) as c:
        yield c


class _Capture(httpx.BaseTransport):
    """Records every request body on its way to the real cloud."""

    def __init__(self, real: httpx.BaseTransport) -> None:
        self.real = real
        self.requests: list[tuple[str, bytes]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.url.path, request.read()))
        return self.real.handle_request(request)

    def close(self) -> None:
        self.real.close()


def _reputation(cloud: CloudProcess, tmp_path: Path) -> tuple[Reputation, _Capture]:
    settings = ClientSettings(url=cloud.url, ca_file=str(cloud.ca_file))
    with UpstreamClient(settings) as enrol:
        token = enrol.enroll(cloud.product_key)
    capture = _Capture(httpx.HTTPTransport(verify=tls_context(str(cloud.ca_file))))
    client = UpstreamClient(settings, token, transport=capture)
    return Reputation(client, cloud.signing_public_key, tmp_path / "prefixes.json"), capture


def test_no_prefix_hit_sends_nothing_and_a_hit_sends_a_decoyed_fixed_batch(
    cloud: CloudProcess, tmp_path: Path
):
    """Hashes off the list cause no request at all; a listed hash sends its prefix among 15 decoys."""
    bad = hashlib.sha256(secrets.token_bytes(32)).hexdigest()
    cloud.add_bad_hash(bad, "Test.KnownBad.A")
    rep, capture = _reputation(cloud, tmp_path)
    assert rep.sync()
    capture.requests.clear()
    for _ in range(2000):
        other = hashlib.sha256(secrets.token_bytes(16)).hexdigest()
        if other[:8] not in rep.prefixes.prefixes:
            assert rep.check(other) is None
    assert capture.requests == []  # not one byte of lookup traffic
    assert rep.check(bad) == "Test.KnownBad.A"
    ((path, body),) = capture.requests
    sent = json.loads(body)
    assert path == "/v1/reputation/search"
    assert set(sent) == {"prefixes"}  # no pseudonym, no hash, nothing else
    assert len(sent["prefixes"]) == 16 and bad[:8] in sent["prefixes"]
    assert bad not in body.decode()
    assert rep.check(bad) == "Test.KnownBad.A"  # answered from the cache: no second request
    near_miss = bad[:8] + "0" * 56
    assert rep.check(near_miss) is None  # same prefix, other hash: negative, and still cached
    assert len(capture.requests) == 1
    rep.close()


def test_the_prefix_list_is_verified_and_rollbacks_are_refused(cloud: CloudProcess, tmp_path: Path):
    """A tampered envelope, a wrong key, a lower version or a misaligned delta are all refused."""
    rep, _ = _reputation(cloud, tmp_path)
    rep.sync()
    held = rep.prefixes.version
    settings = ClientSettings(url=cloud.url, ca_file=str(cloud.ca_file))
    with UpstreamClient(settings) as client:
        envelope = client.prefix_list(None)
    document = verify_prefix_envelope(envelope, cloud.signing_public_key)
    outer = json.loads(envelope)
    payload = base64.b64decode(outer["payload"]).replace(b'"full"', b'"fulL"')
    tampered = json.dumps({**outer, "payload": base64.b64encode(payload).decode()}).encode()
    with pytest.raises(UpstreamError, match="does not verify"):
        verify_prefix_envelope(tampered, cloud.signing_public_key)
    with pytest.raises(UpstreamError, match="does not verify"):
        verify_prefix_envelope(envelope, base64.b64encode(secrets.token_bytes(32)).decode())
    newer = PrefixList(version=held + 5)
    with pytest.raises(UpstreamError, match="rollback"):
        newer.apply(document)
    with pytest.raises(UpstreamError, match="does not start"):
        PrefixList(version=held - 1 if held > 0 else 0).apply(
            {"kind": "delta", "since": held + 1, "version": held + 2, "added": [], "removed": []}
        )
    rep.close()


def test_deltas_add_and_remove_prefixes_and_the_list_survives_a_restart(cloud: CloudProcess, tmp_path: Path):
    """A delta sync applies additions and withdrawals; the saved list loads back with its version."""
    rep, _ = _reputation(cloud, tmp_path)
    rep.sync()
    added = hashlib.sha256(secrets.token_bytes(8)).hexdigest()
    cloud.add_bad_hash(added, "Test.KnownBad.B")
    assert rep.sync()
    assert added[:8] in rep.prefixes.prefixes
    cloud.remove_bad_hash(added)
    assert rep.sync()
    assert added[:8] not in rep.prefixes.prefixes
    again = PrefixList.load(tmp_path / "prefixes.json")
    assert again == rep.prefixes
    assert (tmp_path / "prefixes.json").stat().st_mode & 0o777 == 0o600
    rep.close()


def _enroll(cloud: CloudProcess, home: Path) -> None:
    """Enrol ``home`` with the cloud, pinning its prefix-list signing key."""
    out = run_cli(
        "enroll", cloud.url, "--product-key", cloud.product_key, "--ca-file", str(cloud.ca_file),
        "--prefix-key", cloud.signing_public_key, home=home,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr


def test_scan_marks_a_known_bad_file_malicious_by_reputation(cloud: CloudProcess, tmp_path: Path):
    """A file no rule knows, listed in the cloud, is reported malicious with source ``reputation``."""
    sample = b"harmless-looking bytes that the cloud knows are bad " + secrets.token_bytes(16)
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "tool.bin").write_bytes(sample)
    (tmp_path / "tree" / "other.bin").write_bytes(secrets.token_bytes(64))
    cloud.add_bad_hash(hashlib.sha256(sample).hexdigest(), "Test.KnownBad.C")
    home = tmp_path / "home"
    _enroll(cloud, home)
    scan = run_cli("scan", "--json", "--no-cache", str(tmp_path / "tree"), home=home)
    lines = [json.loads(line) for line in scan.stdout.splitlines()]
    tool = next(line for line in lines if line.get("path", "").endswith("tool.bin"))
    assert scan.returncode == 1
    assert tool["verdict"] == "malicious"
    assert {"name": "Test.KnownBad.C", "source": "reputation"} in [
        {"name": d["name"], "source": d["source"]} for d in tool["detections"]
    ]
    sent = [json.loads(line) for line in run_cli("sent", "--json", home=home).stdout.splitlines()]
    searches = [s for s in sent if s["kind"] == "reputation_search"]
    assert len(searches) == 1  # only the listed file caused a lookup
    assert len(searches[0]["payload"]["prefixes"]) == 16


def test_a_cached_file_listed_later_is_reported_and_queued(cloud: CloudProcess, tmp_path: Path):
    """A file first scanned clean (and cached) that the cloud lists afterwards gets a queued record."""
    home = tmp_path / "home"
    _enroll(cloud, home)
    sample = tmp_path / "later.bin"
    sample.write_bytes(b"listed only after its first scan " + secrets.token_bytes(16))
    assert run_cli("scan", "--no-upload", str(sample), home=home).returncode == 0
    cloud.add_bad_hash(hashlib.sha256(sample.read_bytes()).hexdigest(), "Test.KnownBad.Later")
    (home / "prefixes.json").unlink(missing_ok=True)  # the next scan syncs the list again
    second = run_cli("scan", "--json", str(sample), home=home)
    lines = [json.loads(line) for line in second.stdout.splitlines()]
    assert lines[0]["cached"] is True and lines[0]["verdict"] == "malicious"
    assert lines[-1]["delivered"] == 1
