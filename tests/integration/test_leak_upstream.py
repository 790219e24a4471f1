"""Leak test: every byte sent to the real cloud, captured in front of TLS, holds no canary.

A tree whose user-like directory names, file names and contents carry unique canaries is scanned
with delivery and reputation lookups on, against the reference cloud over TLS. A capturing transport
(the client's one transport seam) records each request's URL, headers and body, also gunzipped. No
canary may appear in any of them in plain, hex, URL-encoded or base64 form, and no hash of a file
holding personal data may appear at all.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator
from pathlib import Path

import canary
import httpx
import pytest
import samples
import structlog

from agent import cli
from agent.upstream import client as upstream_client
from cloud.harness import CloudProcess, running_cloud

pytestmark = pytest.mark.slow


class _Capture(httpx.BaseTransport):
    def __init__(self, real: httpx.BaseTransport, sink: list[bytes]) -> None:
        self.real, self.sink = real, sink

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        head = f"{request.method} {request.url}\n".encode() + b"".join(
            k + b": " + v + b"\n" for k, v in request.headers.raw
        )
        self.sink.append(head + body)
        if request.headers.get("content-encoding") == "gzip":
            self.sink.append(gzip.decompress(body))
        return self.real.handle_request(request)

    def close(self) -> None:
        self.real.close()


@pytest.fixture(scope="module")
def cloud(tmp_path_factory) -> Iterator[CloudProcess]:
    with running_cloud(tmp_path_factory.mktemp("leak-cloud")) as c:
        yield c


def test_nothing_personal_reaches_the_wire(cloud: CloudProcess, tmp_path: Path, monkeypatch, capfd):
    """Verdict uploads and reputation lookups carry no canary and no hash of a personal file."""
    values = {k: canary.make(k) for k in ("user", "dir", "file", "body", "mail", "name", "host")}
    docs = tmp_path / "home" / values["user"] / f"Documents-{values['dir']}"
    docs.mkdir(parents=True)
    personal = (
        f"From: {values['name']} <{values['mail'].lower()}@example.com>\n"
        f"Host: {values['host']}.corp.example\nIBAN: DE89 3704 0044 0532 0130 00\n{values['body']}\n"
    ).encode()
    files = {
        f"{values['file']}-letter.txt": personal,
        f"{values['file']}-letter-with-eicar.txt": personal + samples.eicar(),
        f"{values['file']}-eicar.com": samples.eicar(),
        f"{values['file']}-macro.docm": samples.docm(samples.ole_vba("AutoOpen")),
        f"{values['file']}-nested.zip": samples.zip_of({f"{values['body']}/x.com": samples.eicar()}),
        f"{values['file']}-tool.bin": b"\x7fELF known bad by reputation " + values["body"].encode(),
    }
    for name, data in files.items():
        (docs / name).write_bytes(data)
    cloud.add_bad_hash(hashlib.sha256(files[f"{values['file']}-tool.bin"]).hexdigest(), "Test.Leak.KnownBad")
    cloud.add_bad_hash(hashlib.sha256(personal).hexdigest(), "Test.Leak.PersonalPrefix")  # forces a lookup
    home = tmp_path / "agent-home"
    monkeypatch.setenv("ENDPOINT_AGENT_HOME", str(home))
    captured: list[bytes] = []
    monkeypatch.setattr(
        upstream_client, "transport_factory", lambda ctx: _Capture(httpx.HTTPTransport(verify=ctx), captured)
    )
    try:
        enrolled = cli.main([
            "enroll", cloud.url, "--product-key", cloud.product_key, "--ca-file", str(cloud.ca_file),
            "--pin-sha256", cloud.pin, "--prefix-key", cloud.signing_public_key,
        ])  # fmt: skip
        assert enrolled == 0
        assert cli.main(["scan", "--json", str(tmp_path / "home")]) == 1
    finally:
        structlog.reset_defaults()
    _out, err = capfd.readouterr()
    wire = b"\n".join(captured)
    paths = [c.split(b"\n", 1)[0] for c in captured]
    assert any(b"/v1/verdicts" in p for p in paths)
    assert any(b"/v1/reputation/search" in p for p in paths)
    assert len(cloud.records()) >= 4
    assert canary.find(wire, list(values.values())) == []
    personal_files = (personal, personal + samples.eicar(), files[f"{values['file']}-macro.docm"])
    for data in personal_files:
        digest = hashlib.sha256(data)
        assert digest.hexdigest().encode() not in wire.lower()
        assert canary.find(wire, [digest.hexdigest()]) == []
    assert canary.find(err.encode(), list(values.values())) == []  # nor in the log stream
