"""POST /v1/analytics in-process: anonymous, strict, all-or-nothing, size- and rate-limited, no address kept.

The app is driven through httpx's ASGI transport (the same app ``serve`` runs); the transport's
``client`` sets the peer address the endpoint sees.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.analytics import BURST, MAX_BODY, AnalyticsIntake
from cloud.app import create_app
from cloud.service import Service, Settings

DAY = "2026-05-04"
REMOTE = ("198.51.100.23", 40123)
LOOPBACK = ("127.0.0.1", 40124)


class App:
    """The app and its service in-process; one event loop per request."""

    def __init__(self, base: Path) -> None:
        self.settings = Settings(db=base / "r.db", auth_db=base / "a.db", signing_key=base / "k.pem")
        self.app = create_app(self.settings)
        self.app.state.service = self.service = Service(self.settings)

    async def _post(self, body: bytes, headers: dict[str, str], client: tuple[str, int]) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
            return await http.post("/v1/analytics", content=body, headers=headers)

    def post(
        self, body: bytes, headers: dict[str, str] | None = None, client: tuple[str, int] = REMOTE
    ) -> httpx.Response:
        sent = {"Content-Type": "application/json", **(headers or {})}
        response = asyncio.run(self._post(body, sent, client))
        # Starlette runs sync work (the error handlers) on AnyIO worker threads that end shortly after
        # the loop closes; wait for them so the next test does not see them as leaked.
        for thread in threading.enumerate():
            if thread.name == "AnyIO worker thread":
                thread.join(10.0)
        return response

    def stored(self) -> int:
        return self.service.records.conn.execute("SELECT count(*) FROM analytics_reports").fetchone()[0]


@pytest.fixture
def app(tmp_path) -> Iterator[App]:
    running = App(tmp_path)
    try:
        yield running
    finally:
        running.service.close()


def report(**overrides) -> dict:
    base = {"schema": 1, "report_id": secrets.token_hex(16), "day": DAY, "counter": "objects.text", "bit": 1}
    return {**base, **overrides}


def body(*reports: dict) -> bytes:
    return json.dumps(list(reports)).encode()


def test_reports_are_stored_without_a_token_and_without_the_address(app):
    """A batch from a remote address is accepted with no token; the database holds only the report fields."""
    sent = [report(counter="scans_run", bit=0), report(), report(counter="detections.EICAR")]
    reply = app.post(body(*sent))
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"accepted": 3, "duplicate": 0}
    conn = app.service.records.conn
    columns = [row[1] for row in conn.execute("PRAGMA table_info(analytics_reports)")]
    assert columns == ["report_id", "day", "counter", "bit"]
    assert app.service.analytics.store.rows(DAY).count(("objects.text", 1)) == 1
    conn.execute("PRAGMA wal_checkpoint(FULL)")
    for file in Path(app.settings.db).parent.iterdir():
        data = file.read_bytes()
        assert REMOTE[0].encode() not in data
        assert bytes(int(part) for part in REMOTE[0].split(".")) not in data


def test_a_resent_report_is_a_duplicate_and_stored_once(app):
    """Retrying the same reports stores nothing twice."""
    sent = body(report(), report())
    assert app.post(sent).json() == {"accepted": 2, "duplicate": 0}
    assert app.post(sent).json() == {"accepted": 0, "duplicate": 2}
    assert app.stored() == 2


@pytest.mark.parametrize("header", [{"Authorization": "Bearer " + "a" * 43}, {"Cookie": "session=1"}])
def test_an_identified_request_is_refused(app, header):
    """Analytics with a token or a cookie are refused, so no report is ever tied to an install."""
    reply = app.post(body(report()), header)
    assert (reply.status_code, reply.json()["error"]) == (400, "identified_request")
    assert app.stored() == 0


@pytest.mark.parametrize(
    ("sent", "status", "error"),
    [
        (body(report(), report(pseudonym="0" * 32)), 422, "invalid_report"),
        (body(report(), report(counter="objects.floppy")), 422, "invalid_report"),
        (body(report(day="2001-01-01")), 422, "invalid_report"),
        (body(report(day="2999-01-01")), 422, "invalid_report"),
        (body(*[report() for _ in range(32)]), 422, "invalid_report"),
        (b"[]", 422, "invalid_report"),
        (b"[{", 400, "malformed_body"),
        (b"x" * (MAX_BODY + 1), 413, "body_too_large"),
    ],
)
def test_refused_batches_store_nothing(app, sent, status, error):
    """Unknown fields, unknown counters, days out of range, bad sizes and broken JSON: a 4xx, nothing stored."""
    reply = app.post(sent)
    assert (reply.status_code, reply.json()["error"]) == (status, error)
    assert app.stored() == 0


def test_a_gzip_bomb_is_refused(app):
    """A small gzip body that inflates past the limit is refused before it is decoded."""
    bomb = gzip.compress(b"[" + b" " * (MAX_BODY * 8) + b"]")
    reply = app.post(bomb, {"Content-Encoding": "gzip"})
    assert (reply.status_code, reply.json()["error"]) == (413, "inflated_too_large")


def test_only_json_is_taken(app):
    """msgpack, accepted for verdicts, is refused here."""
    reply = app.post(b"\x90", {"Content-Type": "application/msgpack"})
    assert reply.status_code == 415


def test_a_remote_address_is_rate_limited_and_loopback_is_not(app):
    """Past the burst a remote address gets 429 with Retry-After; loopback and other addresses go on."""
    service = app.service
    service.analytics = AnalyticsIntake(service.records.conn, clock=lambda: 1000.0)  # time stands still
    one = body(report())
    codes = [app.post(one).status_code for _ in range(BURST)]
    assert codes == [200] * BURST
    limited = app.post(one)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert app.post(one, client=("203.0.113.9", 1)).status_code == 200
    assert [app.post(one, client=LOOPBACK).status_code for _ in range(BURST + 5)] == [200] * (BURST + 5)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=25,
)


@st.composite
def hostile(draw) -> bytes:
    """Garbage, arbitrary JSON, or a batch with one report broken by an extra or missing field."""
    kind = draw(st.sampled_from(["bytes", "json", "reports"]))
    if kind == "bytes":
        return draw(st.binary(max_size=1500))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    good = [report() for _ in range(draw(st.integers(0, 3)))]
    broken = report()
    if draw(st.booleans()):
        broken[draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in broken))] = draw(json_values)
    else:
        broken.pop(draw(st.sampled_from(sorted(broken))))
    return body(*good, broken)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hostile())
def test_hostile_bodies_get_a_4xx_and_store_nothing(app, data):
    """Whatever arrives, the answer is a JSON refusal and no report of the batch is stored."""
    before = app.stored()
    reply = app.post(data, client=LOOPBACK)
    assert 400 <= reply.status_code < 500, reply.text
    assert "error" in reply.json()
    assert app.stored() == before
