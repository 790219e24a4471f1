"""Pytest fixtures for the reference cloud: one real TLS server per session, fresh tokens per test.

The server is ``endpoint-cloud serve`` in a child process (``cloud.harness.running_cloud``) on an
ephemeral 127.0.0.1 port, with a private CA from ``init-tls``. Its rate limit is low (burst 40, 2/s)
so one test can provoke a 429 with its own token without touching the others.

This is a plugin module, not a conftest.py: a conftest.py here would be imported under the bare name
``conftest`` and shadow tests/conftest.py for the modules that ``from conftest import ...``. Test
modules load it with ``pytest_plugins = ["cloud_fixtures"]``; elsewhere use ``cloud.harness`` directly.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator

import httpx
import pytest
import samples

from cloud.harness import CloudProcess, running_cloud

RATE_ARGS = ("--rate", "2", "--burst", "40", "--cache-seconds", "600", "--max-body", str(1 << 20))


@pytest.fixture(scope="session")
def cloud(tmp_path_factory) -> Iterator[CloudProcess]:
    """The real cloud, served over TLS for the whole session."""
    with running_cloud(tmp_path_factory.mktemp("cloud"), extra_args=RATE_ARGS) as running:
        yield running
    assert running.process.returncode == 0
    events = [json.loads(line) for line in running.log_file.read_text().splitlines()]
    assert [e for e in events if e.get("level") != "info"] == [], "the server logged warnings or errors"


@pytest.fixture(scope="session")
def cloud_tls(cloud) -> ssl.SSLContext:
    """A client TLS context that trusts only the cloud's private CA."""
    return ssl.create_default_context(cafile=str(cloud.ca_file))


@pytest.fixture
def cloud_client(cloud, cloud_tls):
    """An httpx client for the cloud, without a token."""
    with httpx.Client(base_url=cloud.url, verify=cloud_tls, timeout=30) as http:
        yield http


@pytest.fixture
def cloud_token(cloud_client, cloud) -> str:
    """A bearer token freshly enrolled for this test."""
    response = cloud_client.post("/v1/enroll", json={"product_key": cloud.product_key})
    assert response.status_code == 200, response.text
    return response.json()["token"]


@pytest.fixture
def cloud_authed(cloud, cloud_tls, cloud_token):
    """An httpx client for the cloud carrying this test's bearer token."""
    headers = {"Authorization": f"Bearer {cloud_token}"}
    with httpx.Client(base_url=cloud.url, verify=cloud_tls, timeout=30, headers=headers) as http:
        yield http


@pytest.fixture
def cloud_record():
    """The factory of valid wire records (``samples.wire_record``)."""
    return samples.wire_record
