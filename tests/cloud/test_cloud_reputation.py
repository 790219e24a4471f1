"""Reputation on the real server: fixed-size prefix search and the signed, versioned prefix list."""

from __future__ import annotations

import base64
import json
import secrets

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cloud.signing import PREFIX_FORMAT, verify_envelope

pytest_plugins = ["cloud_fixtures"]


def _decoys(n: int) -> list[str]:
    return [secrets.token_hex(4) for _ in range(n)]


def _prefix_list(http, since: int | None = None) -> bytes:
    response = http.get("/v1/reputation/prefixes", params={} if since is None else {"since": since})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.content


def _verified(envelope: bytes, public_key_b64: str) -> dict:
    """Verify as an agent would, with nothing but cryptography and the pinned raw public key."""
    outer = json.loads(envelope)
    payload = base64.b64decode(outer["payload"], validate=True)
    signature = base64.b64decode(outer["signature"], validate=True)
    Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64)).verify(signature, payload)
    return json.loads(payload)


def test_search_returns_a_seeded_hash_under_its_prefix(cloud, cloud_authed):
    """A known-bad hash comes back, with its name, when its prefix hides among 15 decoys."""
    sha = secrets.token_hex(32)
    cloud.add_bad_hash(sha, "Test.Reputation.Seeded")
    prefixes = _decoys(15)
    prefixes.insert(7, sha[:8])
    response = cloud_authed.post("/v1/reputation/search", json={"prefixes": prefixes})
    assert response.status_code == 200, response.text
    body = response.json()
    assert {"sha256": sha, "name": "Test.Reputation.Seeded"} in body["matches"]
    assert all(m["sha256"][:8] in prefixes for m in body["matches"])
    assert body["cache_seconds"] == 600
    assert response.headers["Cache-Control"] == "private, max-age=600"


def test_search_answers_only_hashes_under_the_asked_prefixes(cloud, cloud_authed):
    """A hash whose prefix was not asked for is never returned."""
    sha = secrets.token_hex(32)
    cloud.add_bad_hash(sha, "Test.Reputation.Unasked")
    prefixes = [p for p in _decoys(17) if p != sha[:8]][:16]
    body = cloud_authed.post("/v1/reputation/search", json={"prefixes": prefixes}).json()
    assert sha not in {m["sha256"] for m in body["matches"]}


@pytest.mark.parametrize(
    "body",
    [
        {"prefixes": _decoys(15)},
        {"prefixes": _decoys(17)},
        {"prefixes": []},
        {"prefixes": [*_decoys(15), "ABCDEF01"]},
        {"prefixes": [*_decoys(15), "abcdef"]},
        {"prefixes": [*_decoys(15), secrets.token_hex(32)]},
        {"prefixes": _decoys(16), "pseudonym": "a" * 32},
        {"prefix": _decoys(16)},
        [],
    ],
)
def test_search_refuses_anything_but_exactly_16_prefixes(cloud_authed, body):
    """Another count, another prefix length or form, or another field gets 400."""
    response = cloud_authed.post("/v1/reputation/search", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


def test_a_withdrawn_hash_is_no_longer_found(cloud, cloud_authed):
    """After remove-bad-hash the search no longer returns the hash."""
    sha = secrets.token_hex(32)
    cloud.add_bad_hash(sha, "Test.Reputation.Withdrawn")
    cloud.remove_bad_hash(sha)
    body = cloud_authed.post("/v1/reputation/search", json={"prefixes": [sha[:8], *_decoys(15)]}).json()
    assert sha not in {m["sha256"] for m in body["matches"]}


def test_the_prefix_list_verifies_with_the_public_key(cloud, cloud_client):
    """The full list is signed by the cloud's key, names its format and version, and lists seeded prefixes."""
    sha = secrets.token_hex(32)
    version = cloud.add_bad_hash(sha, "Test.Reputation.Listed")
    document = _verified(_prefix_list(cloud_client), cloud.signing_public_key)
    assert document["format"] == PREFIX_FORMAT
    assert document["kind"] == "full"
    assert document["since"] is None
    assert document["prefix_bytes"] == 4
    assert document["version"] >= version
    assert sha[:8] in document["prefixes"]
    assert document["prefixes"] == sorted(set(document["prefixes"]))
    assert verify_envelope(_prefix_list(cloud_client), cloud.signing_public_key)["kind"] == "full"
    assert cloud_client.get("/v1/health").json()["prefix_version"] == document["version"]


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


@pytest.mark.parametrize("part", ["payload", "signature"])
def test_one_changed_byte_fails_verification(cloud, cloud_client, part):
    """Changing one byte of the payload or of the signature makes verification fail."""
    outer = json.loads(_prefix_list(cloud_client))
    raw = base64.b64decode(outer[part])
    for index in (0, len(raw) // 2, len(raw) - 1):
        forged = json.dumps({**outer, part: base64.b64encode(_flip(raw, index)).decode()}).encode()
        with pytest.raises(InvalidSignature):
            _verified(forged, cloud.signing_public_key)
        with pytest.raises(ValueError, match="does not verify"):
            verify_envelope(forged, cloud.signing_public_key)


def test_another_key_fails_verification(cloud, cloud_client):
    """A list checked against a different public key does not verify."""
    other = base64.b64encode(secrets.token_bytes(32)).decode()
    with pytest.raises(ValueError, match="does not verify"):
        verify_envelope(_prefix_list(cloud_client), other)


def test_deltas_report_net_additions_and_removals(cloud, cloud_client):
    """Deltas since a version list what was added and removed after it, netting out add-then-remove."""
    key = cloud.signing_public_key
    start = _verified(_prefix_list(cloud_client), key)["version"]
    first, second = secrets.token_hex(32), secrets.token_hex(32)
    v1 = cloud.add_bad_hash(first, "Test.Delta.First")
    v2 = cloud.add_bad_hash(second, "Test.Delta.Second")
    assert start < v1 < v2
    delta = _verified(_prefix_list(cloud_client, since=start), key)
    assert (delta["kind"], delta["since"], delta["version"]) == ("delta", start, v2)
    assert delta["added"] == sorted({first[:8], second[:8]})
    assert delta["removed"] == []
    v3 = cloud.remove_bad_hash(first)
    assert v3 == v2 + 1
    after = _verified(_prefix_list(cloud_client, since=v2), key)
    assert (after["added"], after["removed"], after["version"]) == ([], [first[:8]], v3)
    net = _verified(_prefix_list(cloud_client, since=start), key)
    assert (net["added"], net["removed"]) == ([second[:8]], [])


def test_a_delta_at_the_current_version_is_empty(cloud, cloud_client):
    """Asking for changes since the current version gets an empty delta of that version."""
    version = cloud.add_bad_hash(secrets.token_hex(32), "Test.Delta.Current")
    delta = _verified(_prefix_list(cloud_client, since=version), cloud.signing_public_key)
    assert (delta["kind"], delta["version"], delta["added"], delta["removed"]) == ("delta", version, [], [])


def test_a_since_ahead_of_the_cloud_gets_the_full_list(cloud, cloud_client):
    """A since newer than the cloud's version gets the full list, whose lower version an agent refuses."""
    document = _verified(_prefix_list(cloud_client, since=10**15), cloud.signing_public_key)
    assert document["kind"] == "full"
    assert document["version"] < 10**15


@pytest.mark.parametrize("query", ["since=-1", "since=abc", "since=", "since=1&x=2", "version=1"])
def test_bad_prefix_list_parameters_get_400(cloud_client, query):
    """A since that is not a non-negative integer, or another parameter, gets 400."""
    response = cloud_client.get(f"/v1/reputation/prefixes?{query}")
    assert response.status_code == 400


def test_adding_the_same_hash_again_keeps_the_version(cloud):
    """Re-adding a listed hash under the same name changes nothing, so the version stays."""
    sha = secrets.token_hex(32)
    version = cloud.add_bad_hash(sha, "Test.Same")
    assert cloud.add_bad_hash(sha, "Test.Same") == version
    assert cloud.add_bad_hash(sha, "Test.Renamed") == version + 1
