"""forget against the real reference cloud over TLS: nothing of this install remains there afterwards."""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import socket
from collections.abc import Iterator

import pytest
from rights_helpers import load_config, my_pseudonym, record, rows  # type: ignore[import-not-found, unused-ignore]

from agent import config
from agent.governance import EgressGate
from agent.governance import rights_commands as commands
from agent.governance.retention import pseudonyms_used
from agent.governance.rights import forget, retry_pending_erasures
from agent.minimize.wire import encode_record
from agent.outbox import Store
from agent.outbox.delivery import Deliverer, DeliverySettings
from agent.upstream import ClientSettings, UpstreamClient, client_from_config, enroll
from cloud.harness import CloudProcess, running_cloud

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory) -> Iterator[CloudProcess]:
    with running_cloud(
        tmp_path_factory.mktemp("cloud"), extra_args=("--rate", "1000", "--burst", "5000")
    ) as c:
        yield c


def _enrolled(cloud: CloudProcess, home) -> config.Config:
    cfg = load_config(home)
    enroll(cfg, cloud.url, cloud.product_key, ca_file=str(cloud.ca_file))
    return config.load()


def _deliver_mine(cfg: config.Config) -> list[str]:
    """Queue records under this install's pseudonyms of two periods and deliver them; return the pseudonyms."""
    state = cfg.state_dir
    mine = [my_pseudonym(state, NOW), my_pseudonym(state, NOW - dt.timedelta(days=40))]
    store = Store(state / "agent.db", ruleset="r")
    client = client_from_config(cfg)
    assert client is not None
    try:
        store.persist([], [record(mine[0], NOW), record(mine[0], NOW), record(mine[1], NOW)])
        with EgressGate.open(cfg) as gate:
            assert Deliverer(store, client, DeliverySettings(), gate=gate).deliver().sent == 3
        for pseudonym in mine:
            assert client.access(pseudonym)["records"]
    finally:
        client.close()
        store.close()
    return mine


def _someone_else(cloud: CloudProcess) -> str:
    """Another install stores one record; return its pseudonym."""
    theirs = secrets.token_hex(16)
    with UpstreamClient(ClientSettings(url=cloud.url, ca_file=str(cloud.ca_file))) as anonymous:
        token = anonymous.enroll(cloud.product_key)
    with UpstreamClient(ClientSettings(url=cloud.url, ca_file=str(cloud.ca_file)), token) as other:
        other.send_verdicts(b"[" + encode_record(record(theirs, NOW)) + b"]")
    return theirs


def _held_for(cloud: CloudProcess, pseudonyms: list[str]) -> dict[str, list]:
    """What the cloud holds under each pseudonym, asked with a fresh token (forget ended ours)."""
    settings = ClientSettings(url=cloud.url, ca_file=str(cloud.ca_file))
    with UpstreamClient(settings) as anonymous:
        token = anonymous.enroll(cloud.product_key)
    with UpstreamClient(settings, token) as client:
        return {p: client.access(p)["records"] for p in pseudonyms}


def test_forget_leaves_nothing_of_this_install_in_the_cloud(cloud, agent_home, capsys):
    """`forget --yes` gets a receipt per pseudonym; GET /v1/subjects/{p} is then empty for every one."""
    cfg = _enrolled(cloud, agent_home)
    mine = _deliver_mine(cfg)
    theirs = _someone_else(cloud)
    used = [u["pseudonym"] for u in pseudonyms_used(cfg)]
    assert set(mine) <= set(used)
    parser = argparse.ArgumentParser()
    commands.add_parsers(parser.add_subparsers(dest="command"))
    assert commands.run(parser.parse_args(["forget", "--yes"]), cfg) == 0
    out = capsys.readouterr().out
    assert out.count("receipt ") == len(used)
    assert "erased 2 records" in out
    assert _held_for(cloud, used) == {p: [] for p in used}
    stored = {r["pseudonym"] for r in cloud.records()}
    assert not stored & set(used)
    assert theirs in stored
    assert rows(cfg.state_dir, "SELECT count(*), sum(erased) FROM erasure_receipts") == [(len(used), 3)]
    assert rows(cfg.state_dir, "SELECT count(*) FROM erasure_pending") == [(0,)]
    assert not (cfg.state_dir / "upstream.token").exists()  # the enrolment ended: nothing more is sent
    assert "[upstream]" not in cfg.config_file.read_text()


def test_erasures_queued_while_the_cloud_was_away_are_sent_later(cloud, agent_home):
    """forget with the cloud unreachable queues the erasures; the retry later erases everything."""
    cfg = _enrolled(cloud, agent_home)
    mine = _deliver_mine(cfg)
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    down = ClientSettings(url=f"https://127.0.0.1:{port}", ca_file=str(cloud.ca_file), timeout=5)
    report = forget(cfg, lambda _cfg: UpstreamClient(down, "token"))
    assert set(mine) <= set(report.cloud.pending)
    assert all(_held_for(cloud, mine).values())  # still there: nothing reached the cloud
    later = retry_pending_erasures(cfg)
    assert later.pending == {}
    assert {r.pseudonym for r in later.receipts} >= set(mine)
    assert sum(r.erased for r in later.receipts) == 3
    assert _held_for(cloud, mine) == {p: [] for p in mine}
    assert rows(cfg.state_dir, "SELECT count(*) FROM erasure_pending") == [(0,)]
