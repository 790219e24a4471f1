"""The real server: enrollment, authentication, health, TLS only, readiness and clean shutdown."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import ssl
import subprocess
import sys
import warnings

import httpx
import pytest

from cloud.harness import running_cloud
from cloud.tls import init_tls, server_context, spki_pin

pytest_plugins = ["cloud_fixtures"]


def test_ready_line_names_the_bound_port(cloud):
    """The server prints one `listening on https://127.0.0.1:<port>` line for the port it bound."""
    lines = cloud.stdout_file.read_text().splitlines()
    assert lines == [f"listening on https://127.0.0.1:{cloud.port}"]
    assert cloud.port > 0


def test_health_answers_without_a_token(cloud_client):
    """GET /v1/health reports the schema and the prefix-list version."""
    response = cloud_client.get("/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["schema"] == 1
    assert isinstance(body["prefix_version"], int)


def test_enroll_issues_a_256_bit_token(cloud_client, cloud):
    """A known product key gets a fresh url-safe token of 256 bits, different on each call."""
    first = cloud_client.post("/v1/enroll", json={"product_key": cloud.product_key})
    second = cloud_client.post("/v1/enroll", json={"product_key": cloud.product_key})
    assert first.status_code == second.status_code == 200
    assert first.json()["token_type"] == "Bearer"
    assert re.fullmatch(r"[A-Za-z0-9_\-]{43}", first.json()["token"])
    assert first.json()["token"] != second.json()["token"]


@pytest.mark.parametrize(
    "body", [{"product_key": "wrong"}, {"product_key": "test-product-key "}, {"product_key": "x" * 256}]
)
def test_enroll_refuses_an_unknown_product_key(cloud_client, body):
    """An unknown product key gets 403 and no token."""
    response = cloud_client.post("/v1/enroll", json=body)
    assert response.status_code == 403
    assert response.json()["error"] == "unknown_product_key"
    assert "token" not in response.json()


@pytest.mark.parametrize("body", [b"", b"{}", b'{"product_key": 1}', b'{"product_key": "k", "extra": 1}'])
def test_enroll_refuses_a_malformed_body(cloud_client, body):
    """An enroll body that is not exactly {"product_key": string} gets 400."""
    response = cloud_client.post("/v1/enroll", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/verdicts"),
        ("POST", "/v1/reputation/search"),
        ("GET", f"/v1/subjects/{'a' * 32}"),
        ("DELETE", f"/v1/subjects/{'a' * 32}"),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer " + "A" * 43, "Basic dXNlcjpwYXNz"])
def test_endpoints_need_a_valid_token(cloud_client, method, path, authorization):
    """Without a valid bearer token every protected endpoint answers 401."""
    headers = {"Authorization": authorization} if authorization else {}
    response = cloud_client.request(method, path, headers=headers, json=[])
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_unknown_routes_and_methods_get_json_errors(cloud_authed):
    """An unknown path is 404 and a wrong method 405, both as JSON."""
    assert cloud_authed.get("/v1/nothing").status_code == 404
    response = cloud_authed.get("/v1/verdicts")
    assert response.status_code == 405
    assert response.json()["error"] == "http_error"


def test_plain_http_is_refused(cloud):
    """A plain-HTTP request to the TLS port gets no HTTP answer."""
    with httpx.Client(timeout=10) as plain, pytest.raises(httpx.TransportError):
        plain.get(f"http://127.0.0.1:{cloud.port}/v1/health")
    with socket.create_connection(("127.0.0.1", cloud.port), timeout=10) as raw:
        raw.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        with contextlib.suppress(OSError):
            answer = raw.recv(4096)
    assert not answer.startswith(b"HTTP/")


def test_a_client_trusting_another_ca_fails(cloud, tmp_path):
    """A client that trusts a different private CA refuses the server's certificate."""
    init_tls(tmp_path / "other")
    context = ssl.create_default_context(cafile=str(tmp_path / "other" / "ca.pem"))
    with httpx.Client(verify=context, timeout=10) as other, pytest.raises(httpx.ConnectError):
        other.get(f"{cloud.url}/v1/health")


def test_the_certificate_names_localhost(cloud, cloud_tls):
    """The server certificate is valid for the name localhost as well as 127.0.0.1."""
    with httpx.Client(verify=cloud_tls, timeout=10) as http:
        assert http.get(f"https://localhost:{cloud.port}/v1/health").status_code == 200


def _handshake(port: int, context: ssl.SSLContext) -> str | None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return tls.version()


def test_tls_is_1_2_or_newer(cloud, cloud_tls):
    """The server negotiates TLS 1.2 or 1.3 and refuses a client capped at TLS 1.1."""
    assert _handshake(cloud.port, cloud_tls) in {"TLSv1.2", "TLSv1.3"}
    capped = ssl.create_default_context(cafile=str(cloud.ca_file))
    capped.maximum_version = ssl.TLSVersion.TLSv1_2
    assert _handshake(cloud.port, capped) == "TLSv1.2"
    old = ssl.create_default_context(cafile=str(cloud.ca_file))
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError):
        _handshake(cloud.port, old)


def test_the_server_context_requires_tls_1_2(cloud):
    """The context the server runs with has TLS 1.2 as its minimum version."""
    tls = cloud.workdir / "tls"
    context = server_context(tls / "server.pem", tls / "server.key")
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_the_pin_matches_the_served_certificate(cloud, cloud_tls):
    """The harness's SPKI pin is that of the certificate the server presents."""
    with socket.create_connection(("127.0.0.1", cloud.port), timeout=10) as raw:
        with cloud_tls.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            der = tls.getpeercert(binary_form=True)
    assert spki_pin(ssl.DER_cert_to_PEM_cert(der).encode()) == cloud.pin


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_shuts_the_server_down_cleanly(tmp_path, sig):
    """SIGTERM or SIGINT stops the server with exit code 0 and a server_stopped event."""
    with running_cloud(tmp_path / "c") as cloud:
        assert cloud.stop(sig) == 0
    assert '"event": "server_stopped"' in cloud.log_file.read_text()


@pytest.mark.parametrize(
    "args",
    [
        ["--db", "x.db", "--port", "0"],
        ["--db", "x.db", "--port", "0", "--tls-cert", "missing.pem", "--tls-key", "missing.key"],
    ],
)
def test_serve_refuses_to_start_without_tls(tmp_path, args):
    """Without a usable certificate and key, serve exits 2 and creates no database."""
    result = subprocess.run(
        [sys.executable, "-m", "cloud", "serve", *args],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "tls" in result.stderr.lower()
    assert not (tmp_path / "x.db").exists()
