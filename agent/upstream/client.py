"""The HTTPS client for the security cloud: one place where httpx lives, one transport seam.

TLS is always verified: against the system store, or a configured CA file, with TLS 1.2 or newer.
With SPKI pins configured, the certificate's public key must match one of them, and the check runs
inside the TLS handshake, so a connection to a wrong server fails before any byte of a request is
written. There is no switch to turn verification off; tests inject a transport instead.

httpx's exceptions are translated here, once: network trouble, 5xx and 429 become
:class:`UpstreamUnavailable` (with ``retry_after`` where the cloud gave one), any other 4xx becomes
:class:`UpstreamRejected` with the cloud's reason.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

import httpx
import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent import __version__
from agent.errors import ConfigError, UpstreamRejected, UpstreamUnavailable

__all__ = ["ClientSettings", "UpstreamClient", "spki_pin", "tls_context"]

_ERROR = msgspec.json.Decoder(dict[str, Any])

transport_factory: Callable[[ssl.SSLContext], httpx.BaseTransport] | None = None
"""The transport seam for code that builds its clients itself (the CLI): when set, every client
built without an explicit ``transport`` gets ``transport_factory(verifying_context)``. Tests set it
to capture or break traffic in front of the real transport; nothing in the product sets it."""
_Body = bytes | dict[str, Any] | dict[str, str] | None  # content=, json=, headers=, params=


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Where the cloud is and how to trust it."""

    url: str
    ca_file: str = ""
    pins: tuple[str, ...] = ()
    timeout: float = 10.0


def spki_pin(der_cert: bytes) -> str:
    """The base64 SHA-256 of a certificate's SubjectPublicKeyInfo (the HPKP ``pin-sha256`` form)."""
    spki = (
        x509.load_der_x509_certificate(der_cert)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def tls_context(ca_file: str = "", pins: tuple[str, ...] = ()) -> ssl.SSLContext:
    """A verifying client context (TLS >= 1.2), checking SPKI pins during the handshake if given."""
    try:
        ctx = ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"upstream.ca_file cannot be used: {exc}") from exc
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if pins:
        ctx.sslsocket_class = _pinned_socket_class(frozenset(pins))
    return ctx


def _pinned_socket_class(pins: frozenset[str]) -> type[ssl.SSLSocket]:
    class PinnedSocket(ssl.SSLSocket):
        def do_handshake(self, block: bool = False) -> None:
            super().do_handshake(block)
            der = self.getpeercert(binary_form=True)
            if der is None or spki_pin(der) not in pins:
                self.close()
                raise ssl.SSLCertVerificationError("server key does not match upstream.pin_sha256")

    return PinnedSocket


class UpstreamClient:
    """Requests to the cloud; ``transport`` is the seam where tests inject faults."""

    def __init__(
        self, settings: ClientSettings, token: str = "", transport: httpx.BaseTransport | None = None
    ) -> None:
        if not settings.url.startswith("https://"):
            raise ConfigError("upstream.url must be an https:// URL")
        headers = {"User-Agent": f"endpoint-agent/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.recipient = httpx.URL(settings.url).host
        context = tls_context(settings.ca_file, settings.pins)
        if transport is None and transport_factory is not None:
            transport = transport_factory(context)
        self._http = httpx.Client(
            base_url=settings.url.rstrip("/"),
            headers=headers,
            timeout=settings.timeout,
            verify=context,
            transport=transport,
            follow_redirects=False,
            trust_env=False,  # no proxy or netrc from the environment: the path to the cloud is configured
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def enroll(self, product_key: str) -> str:
        """Exchange a product key for this install's bearer token."""
        reply = self._request("POST", "/v1/enroll", json={"product_key": product_key})
        token = reply.get("token")
        if not isinstance(token, str) or not token:
            raise UpstreamUnavailable("the cloud answered enroll without a token")
        return token

    def send_verdicts(self, json_batch: bytes) -> dict[str, Any]:
        """POST a JSON list of wire records, gzip'd."""
        body = gzip.compress(json_batch, compresslevel=6, mtime=0)
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        return self._request("POST", "/v1/verdicts", content=body, headers=headers)

    def send_analytics(self, payload: bytes) -> dict[str, Any]:
        """POST one perturbed analytics report (no token: the caller's client carries none)."""
        return self._request(
            "POST", "/v1/analytics", content=payload, headers={"Content-Type": "application/json"}
        )

    def search(self, prefixes: list[str]) -> dict[str, Any]:
        """Ask for the full known-bad hashes under a fixed-size batch of 4-byte prefixes."""
        return self._request("POST", "/v1/reputation/search", json={"prefixes": prefixes})

    def prefix_list(self, since: int | None) -> bytes:
        """The signed prefix-list envelope, raw (it is verified by the caller)."""
        params = {"since": str(since)} if since is not None else None
        return self._send("GET", "/v1/reputation/prefixes", params=params).content

    def erase(self, pseudonym: str) -> dict[str, Any]:
        """Ask the cloud to erase every record stored under ``pseudonym``; return its receipt."""
        return self._request("DELETE", f"/v1/subjects/{pseudonym}")

    def access(self, pseudonym: str) -> dict[str, Any]:
        """Every record the cloud holds under ``pseudonym``."""
        return self._request("GET", f"/v1/subjects/{pseudonym}")

    def get_raw(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """A GET whose answer the caller interprets: (status, headers, body); 304 is an answer too."""
        response = self._send("GET", path, headers=headers)
        return response.status_code, dict(response.headers), response.content

    def _request(self, method: str, path: str, **kwargs: _Body) -> dict[str, Any]:
        response = self._send(method, path, **kwargs)
        try:
            return _ERROR.decode(response.content)
        except msgspec.DecodeError as exc:
            raise UpstreamUnavailable(f"the cloud sent a malformed answer to {path}") from exc

    def _send(self, method: str, path: str, **kwargs: _Body) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.TimeoutException as exc:
            raise UpstreamUnavailable(f"{path}: timed out") from exc
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"{path}: {type(exc).__name__}: {_short(exc)}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise UpstreamUnavailable(
                f"{path}: HTTP {response.status_code}", _retry_after(response.headers.get("Retry-After"))
            )
        if response.status_code >= 400:
            raise UpstreamRejected(response.status_code, _reason(response))
        return response


def _short(exc: Exception) -> str:
    cause: BaseException = exc
    while cause.__cause__ is not None or cause.__context__ is not None:  # the TLS error under httpx's
        cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
    text = " ".join(str(a) for a in cause.args) if cause.args else str(cause)
    if isinstance(cause, ssl.SSLCertVerificationError) and "pin" not in text:
        text += " (is the cloud's CA trusted? enroll --ca-file)"
    return text.splitlines()[0][:200] if text else "no detail"


def _reason(response: httpx.Response) -> str:
    try:
        body = _ERROR.decode(response.content)
    except msgspec.DecodeError:
        return f"HTTP {response.status_code}"
    return f"{body.get('error', 'error')}: {str(body.get('reason', ''))[:300]}"


def _retry_after(value: str | None) -> float | None:
    if value is None or not value.strip().isdigit():
        return None
    return min(float(value.strip()), 3600.0)
