"""Data-subject rights on the real server: access and erasure by pseudonym, with a receipt."""

from __future__ import annotations

import re
import secrets

import pytest

pytest_plugins = ["cloud_fixtures"]


def _store(http, make, pseudonym: str, n: int) -> list[dict]:
    batch = [make(pseudonym=pseudonym) for _ in range(n)]
    assert http.post("/v1/verdicts", json=batch).json()["accepted"] == n
    return batch


def test_access_returns_exactly_the_subjects_records(cloud_authed, cloud_record):
    """GET /v1/subjects/{p} returns every record under p, in order, and none under another pseudonym."""
    mine, other = secrets.token_hex(16), secrets.token_hex(16)
    sent = _store(cloud_authed, cloud_record, mine, 2)
    _store(cloud_authed, cloud_record, other, 1)
    response = cloud_authed.get(f"/v1/subjects/{mine}")
    assert response.status_code == 200
    assert response.json() == {"pseudonym": mine, "records": sent}


def test_access_for_an_unknown_pseudonym_is_empty(cloud_authed):
    """A pseudonym with nothing stored gets an empty list."""
    pseudonym = secrets.token_hex(16)
    assert cloud_authed.get(f"/v1/subjects/{pseudonym}").json() == {"pseudonym": pseudonym, "records": []}


def test_erasure_removes_every_record_and_returns_a_receipt(cloud, cloud_authed, cloud_record):
    """DELETE erases all of p's records with a receipt; GET then returns nothing and others stay."""
    mine, other = secrets.token_hex(16), secrets.token_hex(16)
    sent = _store(cloud_authed, cloud_record, mine, 3)
    kept = _store(cloud_authed, cloud_record, other, 1)
    response = cloud_authed.delete(f"/v1/subjects/{mine}")
    assert response.status_code == 200
    receipt = response.json()
    assert set(receipt) == {"receipt_id", "pseudonym", "erased", "erased_at"}
    assert (receipt["pseudonym"], receipt["erased"]) == (mine, 3)
    assert re.fullmatch(r"[0-9a-f]{32}", receipt["receipt_id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", receipt["erased_at"])
    assert cloud_authed.get(f"/v1/subjects/{mine}").json()["records"] == []
    assert cloud_authed.get(f"/v1/subjects/{other}").json()["records"] == kept
    stored_ids = {r["record_id"] for r in cloud.records()}
    assert not stored_ids & {r["record_id"] for r in sent}


def test_erasing_twice_erases_nothing_the_second_time(cloud_authed, cloud_record):
    """A second erasure of the same pseudonym reports zero with a new receipt."""
    pseudonym = secrets.token_hex(16)
    _store(cloud_authed, cloud_record, pseudonym, 1)
    first = cloud_authed.delete(f"/v1/subjects/{pseudonym}").json()
    second = cloud_authed.delete(f"/v1/subjects/{pseudonym}").json()
    assert (first["erased"], second["erased"]) == (1, 0)
    assert first["receipt_id"] != second["receipt_id"]


def test_erased_records_leave_no_bytes_in_the_database_files(cloud, cloud_authed, cloud_record):
    """After erasure no byte of an erased record id remains in the database or its WAL."""
    pseudonym = secrets.token_hex(16)
    sent = _store(cloud_authed, cloud_record, pseudonym, 2)
    cloud_authed.delete(f"/v1/subjects/{pseudonym}")
    files = [p for p in cloud.db.parent.glob(cloud.db.name + "*") if p.is_file()]
    raw = b"".join(p.read_bytes() for p in files)
    for record in sent:
        assert record["record_id"].encode() not in raw
        assert record["sha256"].encode() not in raw


@pytest.mark.parametrize(
    "pseudonym", ["A" * 32, "a" * 31, "a" * 33, "g" * 32, "a" * 31 + "-", "a" * 31 + "%20"]
)
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_a_malformed_pseudonym_gets_400(cloud_authed, pseudonym, method):
    """A pseudonym that the wire schema would refuse is refused here too."""
    response = cloud_authed.request(method, f"/v1/subjects/{pseudonym}")
    assert response.status_code == 400
    assert response.json()["error"] == "bad_pseudonym"


@pytest.mark.parametrize("path", ["a" * 31 + "%2F", "..%2F..%2Fetc", "a" * 32 + "/", ""])
def test_a_path_with_more_segments_matches_no_subject(cloud_authed, path):
    """A pseudonym segment that hides a slash, or an empty one, is 404, never a redirect."""
    response = cloud_authed.get(f"/v1/subjects/{path}")
    assert response.status_code == 404
