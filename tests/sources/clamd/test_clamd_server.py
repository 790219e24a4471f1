"""The clamd server on real Unix and loopback TCP sockets, with a real scanning backend."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import stat
import struct
import subprocess
import sys
import threading
import time

import pytest
import samples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from agent.errors import ConfigError
from agent.model import ScanRequest
from agent.sources import Walker
from agent.sources.clamd import ClamdServer, ClamdSettings

pytest_plugins = ["clamd_fixtures"]

HANG_GUARD = 30.0
EICAR_FOUND = b"Eicar-Test-Signature FOUND"


def eventually(predicate, what: str):
    """Poll ``predicate`` until it holds; the deadline is only a hang guard."""
    end = time.monotonic() + HANG_GUARD
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def spool_files(server: ClamdServer) -> list[str]:
    spool = server.settings.socket_path.parent / "spool"
    return sorted(os.listdir(spool)) if spool.exists() else []


@pytest.fixture
def sock(clamd_server):
    return clamd_server.settings.socket_path


# ---------------------------------------------------------------- simple commands


@pytest.mark.parametrize(
    ("sent", "answer"),
    [
        (b"PING", b"PONG\n"),
        (b"PING\n", b"PONG\n"),
        (b"nPING\n", b"PONG\n"),
        (b"zPING\0", b"PONG\0"),
        (b"nPING\nnPING\n", b"PONG\n"),
        (b"INSTREAM", b"UNKNOWN COMMAND\n"),
        (b"ALLMATCHSCAN /tmp", b"UNKNOWN COMMAND\n"),
        (b"IDSESSION", b"UNKNOWN COMMAND\n"),
        (b"zFOO\0", b"UNKNOWN COMMAND\0"),
        (b"\xff\xfe garbage \x00\x01", b"UNKNOWN COMMAND\n"),
        (b"nRELOAD\n", b"RELOADING\n"),
        (b"nDETSTATS\n", b""),
    ],
)
def test_simple_commands_answer_like_clamd(sock, clamd_query, sent, answer):
    """Each framing and command gets clamd 1.4.6's exact reply, then the connection closes."""
    assert clamd_query(sock, sent) == answer


def test_version_and_versioncommands(sock, clamd_query, clamd_backend):
    """VERSION is the backend's version text; VERSIONCOMMANDS appends clamd's command list."""
    version = clamd_backend.version()
    assert clamd_query(sock, b"zVERSION\0") == version.encode() + b"\0"
    listing = clamd_query(sock, b"nVERSIONCOMMANDS\n")
    assert listing.startswith(version.encode() + b"| COMMANDS: SCAN QUIT RELOAD PING ")
    assert listing.endswith(b" ALLMATCHSCAN\n")


def test_stats(sock, clamd_query):
    """STATS has clamd's layout and ends with END and the terminator."""
    body = clamd_query(sock, b"zSTATS\0")
    assert body.startswith(
        b"POOLS: 1\n\nSTATE: VALID PRIMARY\nTHREADS: live 1  idle 1 max 1 idle-timeout 30\n"
    )
    assert body.endswith(b"\nEND\0")


def test_reload_reaches_the_backend(sock, clamd_query, clamd_backend):
    """RELOAD answers RELOADING and asks the backend to reload."""
    assert clamd_query(sock, b"RELOAD") == b"RELOADING\n"
    eventually(lambda: clamd_backend.reloads == 1, "the reload")


def test_socket_mode_and_cleanup(clamd_factory):
    """The socket is 0660 by default and gone after close()."""
    server = clamd_factory()
    path = server.settings.socket_path
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    server.close()
    assert not path.exists()


# ---------------------------------------------------------------- INSTREAM


def test_instream_eicar_and_clean(sock, clamd_query, clamd_chunks):
    """INSTREAM of EICAR is FOUND, of a clean text OK, with the command's terminator."""
    assert (
        clamd_query(sock, b"nINSTREAM\n" + clamd_chunks(samples.eicar())) == b"stream: " + EICAR_FOUND + b"\n"
    )
    assert clamd_query(sock, b"zINSTREAM\0" + clamd_chunks(b"hello world\n")) == b"stream: OK\0"
    assert clamd_query(sock, b"zINSTREAM\0" + struct.pack("!L", 0)) == b"stream: OK\0"


def test_small_stream_is_scanned_in_memory(sock, clamd_query, clamd_chunks, clamd_backend):
    """A stream within in_memory_max goes to the backend as bytes, with source stream."""
    clamd_query(sock, b"nINSTREAM\n" + clamd_chunks(b"x" * 5000, 700))
    (seen,) = clamd_backend.seen
    assert (seen["source"].value, seen["in_memory"], seen["size"], seen["display"]) == (
        "stream",
        True,
        5000,
        "stream",
    )


def test_large_stream_is_spooled_0600_and_unlinked(clamd_factory, clamd_query, clamd_chunks, clamd_backend):
    """A stream past in_memory_max is spooled to a 0600 file in a 0700 dir, removed once answered."""
    server = clamd_factory(in_memory_max=1024)
    payload = samples.zip_of({"pad.bin": os.urandom(300_000), "eicar.com": samples.eicar()})
    reply = clamd_query(server.settings.socket_path, b"zINSTREAM\0" + clamd_chunks(payload, 8192))
    assert reply == b"stream: " + EICAR_FOUND + b"\0"
    (seen,) = clamd_backend.seen
    assert (seen["in_memory"], seen["spool_mode"], seen["spool_dir_mode"], seen["size"]) == (
        False,
        0o600,
        0o700,
        len(payload),
    )
    eventually(lambda: spool_files(server) == [], "the spool file to be unlinked")


def test_memory_budget_sends_streams_to_the_spool(clamd_factory, clamd_query, clamd_chunks, clamd_backend):
    """When the shared memory budget is used up, even a small stream is spooled."""
    server = clamd_factory(memory_budget=0)
    assert (
        clamd_query(server.settings.socket_path, b"nINSTREAM\n" + clamd_chunks(b"small")) == b"stream: OK\n"
    )
    assert clamd_backend.seen[0]["in_memory"] is False


def test_nested_archive_past_a_limit_is_found_not_ok(sock, clamd_query, clamd_chunks):
    """EICAR 20 zips deep is reported FOUND with the limit's name: never OK to a mail filter."""
    reply = clamd_query(sock, b"nINSTREAM\n" + clamd_chunks(samples.nested_zip(samples.eicar(), 20)))
    assert reply == b"stream: Limits.Exceeded.MaxRecursion FOUND\n"


def test_stream_over_quota_gets_the_exact_reply(clamd_factory, clamd_raw, clamd_chunks, clamd_query):
    """Past StreamMaxLength: 'INSTREAM size limit exceeded. ERROR', the connection closes, nothing stays."""
    server = clamd_factory(stream_max_length=64 * 1024, in_memory_max=1024)
    client = clamd_raw(server.settings.socket_path)
    client.send(b"nINSTREAM\n" + clamd_chunks(b"z" * 200_000, 4096))
    assert client.read_all() == b"INSTREAM size limit exceeded. ERROR\n"
    eventually(lambda: spool_files(server) == [], "the partial spool file to be removed")
    assert clamd_query(server.settings.socket_path, b"PING") == b"PONG\n"


def test_huge_length_prefix_is_refused_at_once(sock, clamd_raw, clamd_query):
    """A 4 GiB length prefix is refused without the server waiting for (or buffering) its data."""
    client = clamd_raw(sock)
    client.send(b"zINSTREAM\0" + struct.pack("!L", 0xFFFFFFFF) + b"only a little")
    client.sock.shutdown(socket.SHUT_WR)
    assert client.read_all() == b"INSTREAM size limit exceeded. ERROR\0"
    assert clamd_query(sock, b"PING") == b"PONG\n"


def test_client_disconnecting_mid_stream(clamd_factory, clamd_raw, clamd_query):
    """A client that goes away mid-stream leaves no spool file and no harm behind."""
    server = clamd_factory(in_memory_max=1024)
    client = clamd_raw(server.settings.socket_path)
    client.send(b"nINSTREAM\n" + struct.pack("!L", 100_000) + b"q" * 50_000)
    eventually(lambda: len(spool_files(server)) == 1, "the stream to spill to the spool")
    client.close()
    eventually(lambda: spool_files(server) == [], "the abandoned spool file to be removed")
    assert clamd_query(server.settings.socket_path, b"PING") == b"PONG\n"


# ---------------------------------------------------------------- timeouts and limits


def test_length_prefix_then_nothing_times_out(clamd_factory, clamd_raw, clamd_query):
    """A client that sends a length prefix and then nothing gets an ERROR when read_timeout passes."""
    server = clamd_factory(read_timeout=0.3)
    client = clamd_raw(server.settings.socket_path)
    client.send(b"nINSTREAM\n" + struct.pack("!L", 10))
    assert client.read_all() == b"COMMAND READ TIMED OUT. ERROR\n"
    assert clamd_query(server.settings.socket_path, b"PING") == b"PONG\n"


def test_stalled_stream_does_not_stall_others(sock, clamd_raw, clamd_query, clamd_chunks):
    """While one client sits on a half-sent stream, others get PONG and INSTREAM answers."""
    stalled = clamd_raw(sock)
    stalled.send(b"nINSTREAM\n" + struct.pack("!L", 10) + b"abc")
    assert clamd_query(sock, b"zPING\0") == b"PONG\0"
    assert (
        clamd_query(sock, b"nINSTREAM\n" + clamd_chunks(samples.eicar())) == b"stream: " + EICAR_FOUND + b"\n"
    )


def test_silent_client_times_out(clamd_factory, clamd_raw):
    """A client that connects and says nothing is told so after command_read_timeout."""
    server = clamd_factory(command_read_timeout=0.2)
    assert clamd_raw(server.settings.socket_path).read_all() == b"COMMAND READ TIMED OUT. ERROR\n"


def test_half_sent_z_command_times_out_with_nul(clamd_factory, clamd_raw):
    """The timeout reply to a half-sent z command is NUL-terminated."""
    server = clamd_factory(command_read_timeout=0.2)
    client = clamd_raw(server.settings.socket_path)
    client.send(b"zPIN")
    assert client.read_all() == b"COMMAND READ TIMED OUT. ERROR\0"


def test_idle_session_times_out(clamd_factory, clamd_raw):
    """A session with nothing in flight that stays silent past idle_timeout is closed with an ERROR."""
    server = clamd_factory(idle_timeout=0.2)
    client = clamd_raw(server.settings.socket_path)
    client.send(b"nIDSESSION\nnPING\n")
    assert client.read_all() == b"1: PONG\nCOMMAND READ TIMED OUT. ERROR\n"


def test_connection_cap_gives_an_error(clamd_factory, clamd_raw, clamd_query):
    """Past max_connections, the next client's command gets a clear ERROR in its own framing."""
    server = clamd_factory(max_connections=3, max_client_connections=3, queue_timeout=0.3)
    path = server.settings.socket_path
    held = [clamd_raw(path) for _ in range(3)]
    held[0].send(b"nIDSESSION\nnPING\n")
    assert held[0].read_until(b"\n") == b"1: PONG\n"  # all three are being served
    assert clamd_query(path, b"zPING\0") == b"Too many connections. ERROR\0"
    for client in held:
        client.close()
    eventually(lambda: clamd_query(path, b"zPING\0") == b"PONG\0", "capacity to come back")


def test_clients_past_the_limits_wait_for_a_slot_instead_of_an_error(clamd_factory, clamd_query):
    """Like clamd's queue: 8 threads of one process over 4 per-client slots are all served, no ERROR.

    (4 served and 4 waiting: a client may have as many connections waiting as it may hold.)
    """
    server = clamd_factory(max_connections=16, max_client_connections=4)
    path = server.settings.socket_path
    body = samples.eicar()
    stream = b"zINSTREAM\0" + struct.pack("!L", len(body)) + body + struct.pack("!L", 0)
    replies: list[bytes] = []

    def client() -> None:
        for _ in range(15):
            replies.append(clamd_query(path, stream))

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HANG_GUARD)
    assert len(replies) == 120
    assert set(replies) == {b"stream: " + EICAR_FOUND + b"\0"}


def test_one_client_waiting_past_its_limit_cannot_lock_out_another(clamd_factory, clamd_raw, tmp_path):
    """A process holding its slots and its share of the queue gets ERRORs; another process is served."""
    server = clamd_factory(max_connections=4, max_client_connections=2)
    path = server.settings.socket_path
    hogs = [clamd_raw(path) for _ in range(8)]  # 2 served, 2 waiting, 4 refused at once
    hogs[-1].send(b"nPING\n")
    assert hogs[-1].read_all() == b"Too many connections from this client. ERROR\n"
    _another_process_is_served(path, tmp_path)


def test_500_connections_from_one_client_do_not_block_another(
    clamd_factory, clamd_raw, clamd_chunks, tmp_path
):
    """One process holding 500 idle connections cannot stop another process's PING and INSTREAM."""
    server = clamd_factory(max_client_connections=64, queue_timeout=0.5)
    path = server.settings.socket_path
    hogs = [clamd_raw(path) for _ in range(500)]
    _another_process_is_served(path, tmp_path)
    hogs[-1].send(b"nPING\n")
    assert hogs[-1].read_all() == b"Too many connections from this client. ERROR\n"
    hogs[0].send(b"nPING\n")
    assert hogs[0].read_all() == b"PONG\n"


def _another_process_is_served(path, tmp_path):
    """Another process's PING and INSTREAM of EICAR are answered, not refused."""
    sample = tmp_path / "eicar.com"
    sample.write_bytes(samples.eicar())
    other = subprocess.run(
        [sys.executable, "-c", _OTHER_CLIENT, str(path), str(sample)],
        capture_output=True,
        timeout=HANG_GUARD,
        check=True,
    )
    assert other.stdout == b"PONG\x00|stream: " + EICAR_FOUND + b"\n"


_OTHER_CLIENT = """
import socket, struct, sys
def ask(data):
    s = socket.socket(socket.AF_UNIX); s.settimeout(30); s.connect(sys.argv[1]); s.sendall(data)
    out = b""
    while chunk := s.recv(4096):
        out += chunk
    s.close()
    return out
body = open(sys.argv[2], "rb").read()
stream = b"nINSTREAM\\n" + struct.pack("!L", len(body)) + body + struct.pack("!L", 0)
sys.stdout.buffer.write(ask(b"zPING\\0") + b"|" + ask(stream))
"""


_fragments = st.one_of(
    st.binary(max_size=40),
    st.sampled_from(
        [b"zINSTREAM\0", b"nINSTREAM\n", b"zIDSESSION\0", b"nIDSESSION\n", b"zPING\0", b"nEND\n"]
    ),
    st.sampled_from([b"zVERSION\0", b"nSTATS\n", b"zFILDES\0\0", b"nQUIT\n", b"PING", b"\0", b"\n"]),
    st.integers(0, 2**32 - 1).map(lambda n: struct.pack("!L", n)),
    st.integers(0, 64).map(lambda n: struct.pack("!L", n) + b"x" * n),
)


@pytest.fixture
def small_server(clamd_factory):
    """One server for all examples of the live fuzz test, with small stream limits."""
    return clamd_factory(stream_max_length=4096, in_memory_max=512)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(_fragments, min_size=1, max_size=8).map(b"".join).filter(lambda b: b"SCAN" not in b),
    st.integers(1, 64),
)
def test_server_survives_garbage(small_server, data, packet):
    """Whatever bytes a client sends (in whatever pieces) before hanging up, the next client gets PONG."""
    path = small_server.settings.socket_path
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(HANG_GUARD)
        conn.connect(str(path))
        with contextlib.suppress(OSError):
            for start in range(0, len(data), packet):
                conn.sendall(data[start : start + packet])
            conn.shutdown(socket.SHUT_WR)
            while conn.recv(65536):
                pass
    assert _unix_query(path, b"zPING\0") == b"PONG\0"


def test_garbage_connections_leave_the_server_healthy(sock, clamd_query):
    """A burst of garbage commands gets UNKNOWN COMMAND each, and the server keeps serving."""
    junk = [bytes([n]) * 3 + b"\n" for n in range(1, 256) if chr(n) not in "zn"][:60]
    for data in junk:
        assert clamd_query(sock, data) == b"UNKNOWN COMMAND\n"
    assert clamd_query(sock, b"zINSTREAM\0" + b"\0\0\0\x03abc\0\0\0\0") == b"stream: OK\0"


def test_command_too_long(sock, clamd_raw):
    """A z command that never ends is cut off with an ERROR instead of being buffered forever."""
    client = clamd_raw(sock)
    client.send(b"zSCAN /" + b"a" * 20_000)
    assert client.read_all() == b"Command too long. ERROR\0"


# ---------------------------------------------------------------- sessions


def test_session_replies_come_in_completion_order(sock, clamd_raw, clamd_chunks, clamd_backend):
    """In IDSESSION a quick PING is answered while an earlier stream is still being scanned."""
    clamd_backend.gate.clear()
    client = clamd_raw(sock)
    client.send(b"zIDSESSION\0zINSTREAM\0" + clamd_chunks(samples.eicar()) + b"zPING\0")
    assert client.read_until(b"\0") == b"2: PONG\0"
    clamd_backend.gate.set()
    assert client.read_until(b"\0") == b"1: stream: " + EICAR_FOUND + b"\0"
    client.send(b"zVERSION\0zEND\0")
    assert client.read_all() == b"3: " + clamd_backend.version().encode() + b"\0"


def test_session_with_several_commands(sock, clamd_raw, clamd_chunks, tmp_path):
    """A session mixing PING, VERSION, INSTREAM, SCAN, FILDES and STATS answers each, numbered."""
    eicar = tmp_path / "eicar.com"
    eicar.write_bytes(samples.eicar())
    client = clamd_raw(sock)
    client.send(
        b"nIDSESSION\nnPING\nnVERSION\nnINSTREAM\n"
        + clamd_chunks(samples.eicar())
        + f"nSCAN {eicar}\n".encode()
    )
    with open(eicar, "rb") as f:
        client.send_fd(b"nFILDES\n\0", f.fileno())
    client.send(b"nSTATS\nnEND\n")
    replies = client.read_all().decode()
    numbered = dict(re.findall(r"^(\d+): (.*)$", replies, re.MULTILINE))
    assert numbered["1"] == "PONG"
    assert numbered["2"].startswith("endpoint-agent ")
    assert numbered["3"] == "stream: Eicar-Test-Signature FOUND"
    assert numbered["4"] == f"{eicar}: Eicar-Test-Signature FOUND"
    assert re.fullmatch(r"fd\[\d+\]: Eicar-Test-Signature FOUND", numbered["5"])
    assert numbered["6"] == "POOLS: 1"


def test_session_with_more_commands_than_may_be_in_flight(
    clamd_factory, clamd_raw, clamd_chunks, clamd_backend
):
    """Past max_session_pending the server stops reading, then catches up: every command is answered."""
    server = clamd_factory(max_session_pending=2)
    clamd_backend.gate.clear()
    client = clamd_raw(server.settings.socket_path)
    streams = b"".join(b"zINSTREAM\0" + clamd_chunks(b"item %d" % n) for n in range(6))
    client.send(b"zIDSESSION\0" + streams + b"zPING\0zEND\0")
    clamd_backend.gate.set()
    replies = client.read_all().split(b"\0")
    assert sorted(replies[:-1]) == sorted([b"%d: stream: OK" % n for n in range(1, 7)] + [b"7: PONG"])


def test_contscan_inside_a_session_is_refused(sock, clamd_raw, tmp_path):
    """CONTSCAN inside IDSESSION gets the numbered clamd error and the connection closes."""
    client = clamd_raw(sock)
    client.send(f"nIDSESSION\nnPING\nnCONTSCAN {tmp_path}\nnPING\n".encode())
    assert client.read_all() == b"1: PONG\n2: Command invalid inside IDSESSION. ERROR\n"


def test_unprefixed_command_inside_a_session_is_answered(sock, clamd_raw):
    """Where clamd would hang, an unprefixed command in a session gets an ERROR reply."""
    client = clamd_raw(sock)
    client.send(b"nIDSESSION\nnPING\nPING\n")
    assert (
        client.read_all() == b"1: PONG\n2: Only nCMDS\\n and zCMDS\\0 are accepted inside IDSESSION. ERROR\n"
    )


# ---------------------------------------------------------------- FILDES


def test_fildes_eicar_and_clean(sock, clamd_raw, tmp_path):
    """FILDES scans the received descriptor and names it fd[<n>] in the reply."""
    eicar, clean = tmp_path / "e.com", tmp_path / "c.txt"
    eicar.write_bytes(samples.eicar())
    clean.write_bytes(b"nothing to see\n")
    for path, status in ((eicar, b"Eicar-Test-Signature FOUND\0"), (clean, b"OK\0")):
        client = clamd_raw(sock)
        with open(path, "rb") as f:
            client.send_fd(b"zFILDES\0\0", f.fileno())
        assert re.fullmatch(rb"fd\[\d+\]: " + re.escape(status), client.read_all())


def test_large_fildes_is_spooled(clamd_factory, clamd_raw, clamd_backend, tmp_path):
    """A descriptor's file past in_memory_max is copied to the spool, scanned, and removed."""
    server = clamd_factory(in_memory_max=1024)
    big = tmp_path / "big.bin"
    big.write_bytes(samples.zip_of({"pad.bin": os.urandom(200_000), "eicar.com": samples.eicar()}))
    client = clamd_raw(server.settings.socket_path)
    with open(big, "rb") as f:
        client.send_fd(b"nFILDES\n\0", f.fileno())
    assert re.fullmatch(rb"fd\[\d+\]: Eicar-Test-Signature FOUND\n", client.read_all())
    assert (clamd_backend.seen[0]["in_memory"], clamd_backend.seen[0]["spool_mode"]) == (False, 0o600)
    eventually(lambda: spool_files(server) == [], "the spool copy to be removed")


@pytest.mark.parametrize(
    ("setup", "reply"),
    [
        ("pipe", rb"fd\[\d+\]: Not supported file type. ERROR\n"),
        ("too_big", rb"fd\[\d+\]: FILDES size limit exceeded. ERROR\n"),
    ],
)
def test_fildes_refusals(clamd_factory, clamd_raw, tmp_path, setup, reply):
    """A pipe is never read (it could block); a file past StreamMaxLength is refused."""
    server = clamd_factory(stream_max_length=1000)
    client = clamd_raw(server.settings.socket_path)
    if setup == "pipe":
        read_end, write_end = os.pipe()
        try:
            client.send_fd(b"nFILDES\n\0", read_end)
        finally:
            os.close(read_end)
            os.close(write_end)
    else:
        big = tmp_path / "big"
        big.write_bytes(b"x" * 2000)
        with open(big, "rb") as f:
            client.send_fd(b"nFILDES\n\0", f.fileno())
    assert re.fullmatch(reply, client.read_all())


def test_fildes_without_a_descriptor(sock, clamd_query):
    """FILDES whose byte carries no descriptor gets clamd's ERROR."""
    assert clamd_query(sock, b"zFILDES\0\0") == b"No file descriptor received. ERROR\0"


def test_descriptor_without_fildes(sock, clamd_raw, tmp_path):
    """A descriptor sent with anything but FILDES is a protocol error (and is closed)."""
    target = tmp_path / "f"
    target.write_bytes(b"x")
    client = clamd_raw(sock)
    with open(target, "rb") as f:
        client.send_fd(b"zPIN", f.fileno())
    assert client.read_all() == b"PROTOCOL ERROR: ancillary data sent without FILDES. ERROR\0"


# ---------------------------------------------------------------- path scans


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "tree"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "a" / "e1.com").write_bytes(samples.eicar())
    (root / "b" / "e2.com").write_bytes(samples.eicar())
    (root / "b" / "ok.txt").write_text("fine\n")
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "x.txt").write_text("nothing\n")
    return root, clean


def _lines(data: bytes) -> list[str]:
    return data.decode().splitlines()


def _infected_in_walk_order(root) -> list[str]:
    found = Walker().walk([str(root)])
    return [r.path for r in found if isinstance(r, ScanRequest) and r.path.endswith(".com")]


def test_scan_stops_at_the_first_find(sock, clamd_query, tree):
    """SCAN of a directory reports the first infected file (in walk order) only, as clamd."""
    root, _ = tree
    first = _infected_in_walk_order(root)[0]
    assert _lines(clamd_query(sock, f"nSCAN {root}\n".encode())) == [f"{first}: Eicar-Test-Signature FOUND"]


def test_contscan_reports_every_find_in_order(sock, clamd_query, tree):
    """CONTSCAN goes on after a find and reports each infected file, in walk order."""
    root, _ = tree
    expected = [f"{path}: Eicar-Test-Signature FOUND" for path in _infected_in_walk_order(root)]
    assert len(expected) == 2
    assert _lines(clamd_query(sock, f"zCONTSCAN {root}\0".encode()).replace(b"\0", b"\n")) == expected


def test_multiscan_reports_every_find(sock, clamd_query, tree):
    """MULTISCAN reports each infected file (in completion order)."""
    root, _ = tree
    assert sorted(_lines(clamd_query(sock, f"nMULTISCAN {root}\n".encode()))) == [
        f"{root}/a/e1.com: Eicar-Test-Signature FOUND",
        f"{root}/b/e2.com: Eicar-Test-Signature FOUND",
    ]


def test_allmatchscan_reports_every_signature_of_the_first_find(sock, clamd_query, tree):
    """ALLMATCHSCAN gives one line per matching signature, for the first infected file."""
    root, _ = tree
    first = _infected_in_walk_order(root)[0]
    assert _lines(clamd_query(sock, f"nALLMATCHSCAN {root}\n".encode())) == [
        f"{first}: Eicar-Test-Signature FOUND",
        f"{first}: EICAR_Test_File FOUND",
    ]


@pytest.mark.parametrize("command", ["SCAN", "CONTSCAN", "MULTISCAN", "ALLMATCHSCAN"])
def test_clean_path_is_ok(sock, clamd_query, tree, command):
    """A clean directory or file ends with '<path>: OK'."""
    _, clean = tree
    assert clamd_query(sock, f"n{command} {clean}\n".encode()) == f"{clean}: OK\n".encode()
    assert clamd_query(sock, f"n{command} {clean}/x.txt\n".encode()) == f"{clean}/x.txt: OK\n".encode()


@pytest.mark.parametrize("path", ["/nonexistent/eicar.com", "eicar.com", ""])
def test_missing_or_relative_path(sock, clamd_query, path):
    """A missing or relative path gets clamd's path-check ERROR, echoing the path."""
    assert (
        clamd_query(sock, f"nSCAN {path}\n".encode())
        == f"{path}: File path check failure: No such file or directory. ERROR\n".encode()
    )


def test_unscannable_path_is_an_error_not_ok(sock, clamd_query, tmp_path):
    """A FIFO named directly is an ERROR line, with no OK after it."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert (
        clamd_query(sock, f"nSCAN {fifo}\n".encode()) == f"{fifo}: not a regular file (fifo) ERROR\n".encode()
    )


def test_newline_in_a_file_name_cannot_split_a_reply(sock, clamd_query, tmp_path):
    """A walked file whose name holds a newline is shown with '?' in newline-framed replies."""
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "x: OK\nevil").write_bytes(samples.eicar())
    assert (
        clamd_query(sock, f"nCONTSCAN {folder}\n".encode())
        == f"{folder}/x: OK?evil: Eicar-Test-Signature FOUND\n".encode()
    )


def test_scan_requests_are_on_demand(sock, clamd_query, tree, clamd_backend):
    """Path scans reach the backend as on-demand, report-only requests for each walked file.

    Report-only: clamd never changes the files a client asks about, so a policy that quarantines
    applies to the agent's own scans, not to a client's SCAN.
    """
    _, clean = tree
    clamd_query(sock, f"nCONTSCAN {clean}\n".encode())
    seen = [(s["source"].value, s["path"], s["act"]) for s in clamd_backend.seen]
    assert seen == [("on_demand", f"{clean}/x.txt", False)]


# ---------------------------------------------------------------- SHUTDOWN and ownership


def test_shutdown_from_the_owner(sock, clamd_query, clamd_backend):
    """SHUTDOWN (and QUIT) from our own uid reaches the backend, with no reply, as clamd."""
    assert clamd_query(sock, b"zSHUTDOWN\0") == b""
    assert clamd_query(sock, b"QUIT") == b""
    assert clamd_backend.shutdowns == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_other_users_cannot_connect_or_shut_down(clamd_factory, clamd_backend):
    """The 0660 socket keeps other users out; with 0666 another uid may scan but not SHUTDOWN."""
    private = clamd_factory()
    open_to_all = clamd_factory(socket_mode=0o666)
    os.chmod(private.settings.socket_path.parent, 0o755)  # noqa: S103 - let the other user reach the sockets
    as_nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "/usr/bin/python3",
        "-c",
        _ASK,
    ]
    denied = subprocess.run(
        [*as_nobody, str(private.settings.socket_path), "PING"],
        capture_output=True,
        timeout=HANG_GUARD,
        check=False,
    )
    assert b"PermissionError" in denied.stderr
    refused = subprocess.run(
        [*as_nobody, str(open_to_all.settings.socket_path), "SHUTDOWN"],
        capture_output=True,
        timeout=HANG_GUARD,
        check=True,
    )
    assert refused.stdout == b"SHUTDOWN not permitted for this client. ERROR\n"
    assert clamd_backend.shutdowns == 0


_ASK = """
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(30); s.connect(sys.argv[1])
s.sendall(b"n" + sys.argv[2].encode() + b"\\n")
out = b""
while chunk := s.recv(4096):
    out += chunk
sys.stdout.buffer.write(out)
"""


# ---------------------------------------------------------------- TCP


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _tcp_query(address, data: bytes) -> bytes:
    with socket.create_connection(address, timeout=HANG_GUARD) as conn:
        conn.sendall(data)
        out = b""
        while chunk := conn.recv(65536):
            out += chunk
        return out


def test_tcp_on_loopback(clamd_factory, clamd_chunks, clamd_backend):
    """TCP serves the same protocol on loopback; FILDES and SHUTDOWN are refused there."""
    server = clamd_factory(tcp_port=_free_port())
    address = server.tcp_address
    assert address is not None
    assert address[0] == "127.0.0.1"
    assert _tcp_query(address, b"zPING\0") == b"PONG\0"
    assert (
        _tcp_query(address, b"nINSTREAM\n" + clamd_chunks(samples.eicar()))
        == b"stream: " + EICAR_FOUND + b"\n"
    )
    assert _tcp_query(address, b"nFILDES\n\0") == b"No file descriptor received. ERROR\n"
    assert _tcp_query(address, b"nSHUTDOWN\n") == b"SHUTDOWN not permitted for this client. ERROR\n"
    assert clamd_backend.shutdowns == 0


def test_tcp_refuses_non_loopback_hosts(clamd_dir):
    """Asking for TCP on a non-loopback address fails with an error that says why."""
    with pytest.raises(ConfigError, match="loopback only"):
        ClamdSettings(socket_path=clamd_dir / "s.sock", tcp_port=3310, tcp_host="0.0.0.0")  # noqa: S104 - refused


# ---------------------------------------------------------------- start-up


def test_stale_socket_is_replaced(clamd_dir, clamd_backend):
    """A socket file left by a dead server is replaced."""
    path = clamd_dir / "stale.sock"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))
    dead.close()
    with ClamdServer(ClamdSettings(socket_path=path), clamd_backend, clamd_dir / "spool"):
        assert _unix_query(path, b"PING") == b"PONG\n"


def test_live_socket_or_other_file_is_not_taken_over(clamd_server, clamd_dir, clamd_backend):
    """Start-up refuses a path where a server listens, or where some other file is."""
    with pytest.raises(ConfigError, match="another server is listening"):
        ClamdServer(
            ClamdSettings(socket_path=clamd_server.settings.socket_path), clamd_backend, clamd_dir / "spool"
        ).start()
    other = clamd_dir / "file"
    other.write_text("keep me")
    with pytest.raises(ConfigError, match="not a socket"):
        ClamdServer(ClamdSettings(socket_path=other), clamd_backend, clamd_dir / "spool").start()
    assert other.read_text() == "keep me"


def test_leftover_spool_files_are_removed_at_start(clamd_dir, clamd_backend):
    """Stream spool files left by a crash are deleted when the server starts."""
    spool = clamd_dir / "spool"
    spool.mkdir(mode=0o755)
    (spool / "stream-left-behind").write_bytes(b"old content")
    with ClamdServer(ClamdSettings(socket_path=clamd_dir / "s.sock"), clamd_backend, spool):
        assert os.listdir(spool) == []
        assert stat.S_IMODE(os.stat(spool).st_mode) == 0o700


def _unix_query(path, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(HANG_GUARD)
        conn.connect(str(path))
        conn.sendall(data)
        out = b""
        while chunk := conn.recv(65536):
            out += chunk
        return out


# ---------------------------------------------------------------- privacy


def test_logs_hold_no_paths(sock, clamd_query, tree, clamd_chunks):
    """Scanning paths and refusing bad input logs events without any path or content."""
    root, _ = tree
    with capture_logs() as events:
        clamd_query(sock, f"nCONTSCAN {root}\n".encode())
        clamd_query(sock, b"nSCAN /secret/nonexistent\n")
        clamd_query(sock, b"nFOO /secret/garbage\n")
        clamd_query(sock, b"nINSTREAM\n" + clamd_chunks(b"secret content"))
    text = repr(events)
    assert events
    assert str(root) not in text
    assert "secret" not in text


def test_close_with_a_scan_in_flight(clamd_factory, clamd_raw, clamd_chunks, clamd_backend):
    """Closing the server while a scan is pending drops the client and stops cleanly."""
    server = clamd_factory(in_memory_max=16)
    clamd_backend.gate.clear()
    client = clamd_raw(server.settings.socket_path)
    client.send(b"nINSTREAM\n" + clamd_chunks(b"y" * 1000))
    eventually(lambda: len(spool_files(server)) == 1, "the stream to be spooled")
    closer = threading.Thread(target=server.close)
    closer.start()
    closer.join(HANG_GUARD)
    assert not closer.is_alive()
    assert client.read_all() == b""
    clamd_backend.gate.set()
    eventually(lambda: spool_files(server) == [], "the spool file of the dropped stream to be removed")


def test_close_with_grace_lets_a_scan_finish(clamd_factory, clamd_raw, clamd_chunks, clamd_backend):
    """close(grace=...) stops accepting but lets a pending scan answer its client first."""
    server = clamd_factory()
    clamd_backend.gate.clear()
    client = clamd_raw(server.settings.socket_path)
    client.send(b"zINSTREAM\0" + clamd_chunks(samples.eicar()))
    eventually(lambda: clamd_backend.entered == 1, "the scan to be in flight")
    closer = threading.Thread(target=server.close, kwargs={"grace": HANG_GUARD})
    closer.start()
    eventually(lambda: _refuses_connections(server.settings.socket_path), "accepting to stop")
    clamd_backend.gate.set()
    assert client.read_all() == b"stream: " + EICAR_FOUND + b"\0"
    closer.join(HANG_GUARD)
    assert not closer.is_alive()


def _refuses_connections(path) -> bool:
    try:
        _unix_query(path, b"PING")
    except OSError:  # gone, refused, or reset from the backlog as the listener closed
        return True
    return False
