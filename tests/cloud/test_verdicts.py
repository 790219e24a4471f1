"""POST /v1/verdicts on the real server: strict, all-or-nothing, idempotent by record_id."""

from __future__ import annotations

import gzip
import json
import secrets

import msgspec
import pytest

pytest_plugins = ["cloud_fixtures"]


def _stored(cloud, pseudonym: str) -> list[dict]:
    return [r for r in cloud.records() if r["pseudonym"] == pseudonym]


def _post(http, body: bytes, content_type="application/json", encoding=None):
    headers = {"Content-Type": content_type}
    if encoding:
        headers["Content-Encoding"] = encoding
    return http.post("/v1/verdicts", content=body, headers=headers)


def test_a_valid_batch_is_stored(cloud_authed, cloud, cloud_record):
    """Every record of a valid batch is stored exactly as sent."""
    pseudonym = secrets.token_hex(16)
    batch = [
        cloud_record(pseudonym=pseudonym),
        cloud_record(pseudonym=pseudonym, kind=None, sha256=None, size_bucket=None),
    ]
    response = cloud_authed.post("/v1/verdicts", json=batch)
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 2, "duplicate": 0}
    assert _stored(cloud, pseudonym) == batch


def test_the_same_batch_twice_is_stored_once(cloud_authed, cloud, cloud_record):
    """Re-sending a batch reports duplicates and stores nothing new."""
    pseudonym = secrets.token_hex(16)
    batch = [cloud_record(pseudonym=pseudonym) for _ in range(3)]
    assert cloud_authed.post("/v1/verdicts", json=batch).json() == {"accepted": 3, "duplicate": 0}
    assert cloud_authed.post("/v1/verdicts", json=batch).json() == {"accepted": 0, "duplicate": 3}
    partly = [*batch[:1], cloud_record(pseudonym=pseudonym)]
    assert cloud_authed.post("/v1/verdicts", json=partly).json() == {"accepted": 1, "duplicate": 1}
    assert len(_stored(cloud, pseudonym)) == 4


def test_a_record_id_repeated_within_a_batch_is_stored_once(cloud_authed, cloud, cloud_record):
    """Two records with one record_id in the same batch store the first only."""
    pseudonym = secrets.token_hex(16)
    first = cloud_record(pseudonym=pseudonym)
    second = {**first, "verdict": "suspicious"}
    assert cloud_authed.post("/v1/verdicts", json=[first, second]).json() == {"accepted": 1, "duplicate": 1}
    assert [r["verdict"] for r in _stored(cloud, pseudonym)] == ["malicious"]


def test_msgpack_bodies_are_accepted(cloud_authed, cloud, cloud_record):
    """A msgpack batch is decoded with the same schema and stored."""
    pseudonym = secrets.token_hex(16)
    body = msgspec.msgpack.encode([cloud_record(pseudonym=pseudonym)])
    response = _post(cloud_authed, body, "application/msgpack")
    assert response.json() == {"accepted": 1, "duplicate": 0}
    assert len(_stored(cloud, pseudonym)) == 1


@pytest.mark.parametrize("content_type", ["application/json", "application/msgpack"])
def test_gzip_bodies_are_accepted(cloud_authed, cloud, content_type, cloud_record):
    """A gzip'd JSON or msgpack batch is inflated and stored."""
    pseudonym = secrets.token_hex(16)
    batch = [cloud_record(pseudonym=pseudonym) for _ in range(5)]
    raw = json.dumps(batch).encode() if content_type.endswith("json") else msgspec.msgpack.encode(batch)
    response = _post(cloud_authed, gzip.compress(raw), content_type, "gzip")
    assert response.json() == {"accepted": 5, "duplicate": 0}
    assert len(_stored(cloud, pseudonym)) == 5


BAD_CASES = [
    "missing_field",
    "not_power_of_two",
    "bad_pattern",
    "oversize_batch",
    "unknown_field",
    "unknown_nested_field",
    "unknown_purpose",
    "wrong_type",
]


def _bad_batches(cloud_record, pseudonym: str) -> dict[str, list[dict]]:
    good = cloud_record(pseudonym=pseudonym)
    return {
        "unknown_field": [good, cloud_record(pseudonym=pseudonym, path="/home/alice/report.docx")],
        "unknown_nested_field": [
            good,
            cloud_record(pseudonym=pseudonym, detections=[{"name": "X", "source": "yara", "member": "a"}]),
        ],
        "wrong_type": [good, cloud_record(pseudonym=pseudonym, size_bucket="128")],
        "not_power_of_two": [good, cloud_record(pseudonym=pseudonym, size_bucket=100)],
        "bad_pattern": [good, cloud_record(pseudonym=pseudonym, sha256="Z" * 64)],
        "unknown_purpose": [good, cloud_record(pseudonym=pseudonym, purpose="marketing")],
        "missing_field": [
            good,
            {k: v for k, v in cloud_record(pseudonym=pseudonym).items() if k != "verdict"},
        ],
        "oversize_batch": [cloud_record(pseudonym=pseudonym) for _ in range(1001)],
    }


@pytest.mark.parametrize("case", BAD_CASES)
def test_an_invalid_batch_is_refused_whole(cloud_authed, cloud, case, cloud_record):
    """A batch with any record outside the schema gets 422 with a reason, and none of it is stored."""
    pseudonym = secrets.token_hex(16)
    response = cloud_authed.post("/v1/verdicts", json=_bad_batches(cloud_record, pseudonym)[case])
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_record"
    assert response.json()["reason"]
    assert _stored(cloud, pseudonym) == []


def test_a_reason_names_the_place_not_the_value(cloud_authed, cloud_record):
    """The refusal reason points at the field and does not echo the submitted value."""
    response = cloud_authed.post("/v1/verdicts", json=[cloud_record(sha256="alice-secret-" + "0" * 51)])
    assert "$[0].sha256" in response.json()["reason"]
    assert "alice-secret" not in response.text


@pytest.mark.parametrize(
    ("body", "content_type", "encoding", "status"),
    [
        (b"[", "application/json", None, 400),
        (b"[]", "application/json", None, 422),
        (b"{}", "application/json", None, 422),
        (b"\xc1", "application/msgpack", None, 400),
        (b"[]", "text/plain", None, 415),
        (b"[]", "application/json", "br", 415),
        (b"not gzip", "application/json", "gzip", 400),
        (gzip.compress(b"[]")[:-4], "application/json", "gzip", 400),
        (gzip.compress(b"[]") + b"x", "application/json", "gzip", 400),
    ],
)
def test_malformed_bodies_get_4xx(cloud_authed, body, content_type, encoding, status):
    """Malformed, empty, wrongly typed or wrongly encoded bodies get the matching 4xx."""
    assert _post(cloud_authed, body, content_type, encoding).status_code == status


def test_a_gzip_bomb_is_refused_and_nothing_stored(cloud_authed, cloud, cloud_record):
    """A gzip body that inflates past the cap gets 413 and stores nothing."""
    pseudonym = secrets.token_hex(16)
    head = json.dumps([cloud_record(pseudonym=pseudonym)])[:-1].encode()
    bomb = gzip.compress(head + b"," + b" " * (64 << 20) + b"]", compresslevel=9)
    assert len(bomb) < 1 << 20
    response = _post(cloud_authed, bomb, "application/json", "gzip")
    assert response.status_code == 413
    assert response.json()["error"] == "inflated_too_large"
    assert _stored(cloud, pseudonym) == []


def test_a_body_past_the_wire_limit_is_refused(cloud_authed):
    """A body larger than the configured limit gets 413 before it is decoded."""
    response = _post(cloud_authed, b"[" + b" " * (1 << 20) + b"]")
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"


def test_the_rate_limit_answers_429_with_retry_after(cloud, cloud_authed, cloud_client):
    """Past its burst a token gets 429 with Retry-After in whole seconds; other tokens are unaffected."""
    statuses = []
    for _ in range(400):
        response = cloud_authed.get(f"/v1/subjects/{'0' * 32}")
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    assert statuses[-1] == 429, statuses
    assert set(statuses[:-1]) == {200}
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["error"] == "rate_limited"
    other = cloud_client.post("/v1/enroll", json={"product_key": cloud.product_key}).json()["token"]
    fresh = cloud_client.get(f"/v1/subjects/{'0' * 32}", headers={"Authorization": f"Bearer {other}"})
    assert fresh.status_code == 200


def test_logs_carry_no_token_key_or_record_value(
    cloud, cloud_client, cloud_authed, cloud_token, cloud_record
):
    """The server log holds no token, product key, pseudonym, record id or hash that was sent."""
    sent = cloud_record()
    cloud_authed.post("/v1/verdicts", json=[sent])
    cloud_authed.post("/v1/verdicts", json=[{**sent, "extra": "canary-field"}])
    cloud_authed.get(f"/v1/subjects/{sent['pseudonym']}")
    cloud_client.post("/v1/enroll", json={"product_key": "canary-wrong-key"})
    log = cloud.log_file.read_text()
    assert '"event": "batch_stored"' in log
    for secret in (
        cloud_token,
        cloud.product_key,
        "canary-wrong-key",
        "canary-field",
        sent["pseudonym"],
        sent["record_id"],
        sent["sha256"],
    ):
        assert secret not in log
