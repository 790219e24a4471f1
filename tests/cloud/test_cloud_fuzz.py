"""Hypothesis against the app in-process: hostile bodies always get a 4xx and store nothing.

These drive the Starlette app through httpx's ASGI transport for speed (no TLS, no sockets); it is
the same app that ``serve`` runs. App exceptions propagate, so a crash fails the test outright.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import secrets
import threading
from urllib.parse import quote

import httpx
import msgspec
import pytest
import samples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.minimize.wire import WIRE_FIELDS
from cloud.app import create_app
from cloud.service import Service, Settings
from cloud.store import read_records

pytest_plugins = ["cloud_fixtures"]

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class InProcess:
    """A synchronous client for the app, one event loop per request."""

    def __init__(self, app) -> None:
        self.app = app
        self.headers: dict[str, str] = {}

    async def _send(self, method: str, path: str, **kwargs) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="https://testserver", headers=self.headers
        ) as c:
            return await c.request(method, path, **kwargs)

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = asyncio.run(self._send(method, path, **kwargs))
        # Starlette runs sync work on AnyIO worker threads; they end shortly after the loop closes.
        # Wait for them, so the next test does not see this request's thread as a leak.
        for thread in threading.enumerate():
            if thread.name == "AnyIO worker thread":
                thread.join(10.0)
        return response

    def post(self, path: str, **kwargs) -> httpx.Response:
        return self.request("POST", path, **kwargs)


@pytest.fixture(scope="module")
def app_client(tmp_path_factory):
    """The app in-process with a generous rate limit, its record database, and a token."""
    base = tmp_path_factory.mktemp("fuzz")
    settings = Settings(
        db=base / "r.db",
        auth_db=base / "a.db",
        signing_key=base / "k.pem",
        product_keys=("fuzz-key",),
        rate=1e6,
        burst=10**9,
        max_body=64 * 1024,
        max_inflated=64 * 1024,
    )
    app = create_app(settings)
    app.state.service = service = Service(settings)  # what the lifespan does when served
    try:
        http = InProcess(app)
        token = http.post("/v1/enroll", json={"product_key": "fuzz-key"}).json()["token"]
        http.headers["Authorization"] = f"Bearer {token}"
        yield http, settings.db
    finally:
        service.close()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=30,
)
media = st.sampled_from(
    ["application/json", "application/msgpack", "application/x-msgpack", "text/plain", ""]
)


def _hostile_record(draw_extra: str, drop: str | None, record: dict) -> dict:
    broken = {**record, draw_extra: "x"}
    if drop is not None:
        broken.pop(drop, None)
    return broken


@st.composite
def hostile_bodies(draw) -> tuple[bytes, str, bool]:
    """Garbage bytes, arbitrary JSON, or record lists with one record outside the schema."""
    kind = draw(st.sampled_from(["bytes", "json", "msgpack", "records"]))
    content_type = draw(media)
    if kind == "bytes":
        body = draw(st.binary(max_size=2000))
    elif kind == "json":
        body = json.dumps(draw(json_values)).encode()
    elif kind == "msgpack":
        body = msgspec.msgpack.encode(draw(json_values))
    else:
        extra = draw(st.text(min_size=1, max_size=20).filter(lambda k: k not in WIRE_FIELDS))
        drop = draw(
            st.none()
            | st.sampled_from([f for f in WIRE_FIELDS if f not in {"kind", "size_bucket", "sha256"}])
        )
        good = [samples.wire_record() for _ in range(draw(st.integers(0, 3)))]
        batch = [*good, _hostile_record(extra, drop, samples.wire_record())]
        body = json.dumps(batch).encode() if "json" in content_type else msgspec.msgpack.encode(batch)
    return body, content_type, draw(st.booleans())


@FUZZ
@given(hostile_bodies())
def test_hostile_verdict_bodies_get_4xx_and_store_nothing(app_client, case):
    """No body outside the schema gets anything but a 4xx, and none stores a record."""
    http, db = app_client
    body, content_type, gzipped = case
    headers = {"Content-Type": content_type} if content_type else {}
    if gzipped:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    response = http.post("/v1/verdicts", content=body, headers=headers)
    assert 400 <= response.status_code < 500, response.text
    assert set(response.json()) == {"error", "reason"}
    assert read_records(db) == []


@FUZZ
@given(st.binary(max_size=600) | json_values.map(lambda v: json.dumps(v).encode()), media)
def test_hostile_search_and_enroll_bodies_get_4xx(app_client, body, content_type):
    """Search and enroll answer any malformed body with a 4xx."""
    http, _ = app_client
    headers = {"Content-Type": content_type} if content_type else {}
    for path in ("/v1/reputation/search", "/v1/enroll"):
        response = http.post(path, content=body, headers=headers)
        assert 400 <= response.status_code < 500, (path, response.text)


@FUZZ
@given(st.text(max_size=40), st.sampled_from(["GET", "DELETE"]))
def test_any_subject_path_gets_a_non_5xx_answer(app_client, segment, method):
    """Whatever text stands where the pseudonym goes, the answer is 200 only for a valid one, else 4xx."""
    http, _ = app_client
    response = http.request(method, f"/v1/subjects/{quote(segment, safe='')}")
    valid = len(segment) == 32 and all(c in "0123456789abcdef" for c in segment)
    assert response.status_code == 200 if valid else 400 <= response.status_code < 500


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(0, 7), min_size=1, max_size=20), st.booleans())
def test_valid_batches_are_stored_exactly_once(app_client, cloud_record, picks, use_msgpack):
    """Any batch, repeats included, stores each record_id once, and re-sending it stores nothing more."""
    http, db = app_client
    pool = [cloud_record(record_id=secrets.token_hex(16)) for _ in range(8)]
    batch = [pool[i] for i in picks]
    before = len(read_records(db))
    content_type = "application/msgpack" if use_msgpack else "application/json"
    encode = msgspec.msgpack.encode if use_msgpack else (lambda b: json.dumps(b).encode())
    first = http.post("/v1/verdicts", content=encode(batch), headers={"Content-Type": content_type}).json()
    again = http.post("/v1/verdicts", content=encode(batch), headers={"Content-Type": content_type}).json()
    unique = len(set(picks))
    assert first == {"accepted": unique, "duplicate": len(batch) - unique}
    assert again == {"accepted": 0, "duplicate": len(batch)}
    assert len(read_records(db)) == before + unique
