"""The sans-I/O clamd parser and the reply texts: clamd 1.4.6's bytes, and fuzzing for robustness."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.errors import ConfigError, ProtocolError
from agent.model import Detection, Outcome, ScanRequest, Verdict, VerdictKind
from agent.sources.clamd import (
    ClamdProtocolError,
    ClamdSettings,
    Parser,
    Prefix,
    Request,
    StreamChunk,
    StreamEnd,
)
from agent.sources.clamd.protocol import COMMANDS, encode_text
from agent.sources.clamd.replies import Tally, outcome_statuses, stats_body, versioncommands

QUOTA = 1000


def parse(*packets: bytes, quota: int = QUOTA) -> tuple[list, ClamdProtocolError | None, Parser]:
    """Feed ``packets`` one by one, draining events after each; stop at the first protocol error."""
    parser = Parser(stream_max_length=quota)
    events: list = []
    for packet in packets:
        parser.receive(packet)
        try:
            while (event := parser.next_event()) is not None:
                events.append(event)
        except ClamdProtocolError as exc:
            return events, exc, parser
    return events, None, parser


def chunk(data: bytes) -> bytes:
    return struct.pack("!L", len(data)) + data


def only_request(*packets: bytes) -> Request:
    events, error, _ = parse(*packets)
    assert error is None
    assert len(events) == 1
    assert isinstance(events[0], Request)
    return events[0]


def error_reply(*packets: bytes) -> bytes:
    _, error, parser = parse(*packets)
    assert error is not None
    assert parser.done
    return error.reply


@pytest.mark.parametrize(
    ("packet", "command", "prefix"),
    [
        (b"PING", "PING", Prefix.NONE),
        (b"PING\n", "PING", Prefix.NONE),
        (b"PING\0junk", "PING", Prefix.NONE),
        (b"nPING\n", "PING", Prefix.N),
        (b"nPING\r\n", "PING", Prefix.N),
        (b"zPING\0", "PING", Prefix.Z),
        (b"VERSION", "VERSION", Prefix.NONE),
        (b"nVERSIONCOMMANDS\n", "VERSIONCOMMANDS", Prefix.N),
        (b"RELOAD", "RELOAD", Prefix.NONE),
        (b"zSTATS\0", "STATS", Prefix.Z),
        (b"QUIT", "QUIT", Prefix.NONE),
        (b"nSHUTDOWN\n", "SHUTDOWN", Prefix.N),
    ],
)
def test_framing_of_simple_commands(packet, command, prefix):
    """Each framing clamd accepts gives the command with the prefix its reply must use."""
    request = only_request(packet)
    assert (request.command, request.argument, request.number, request.prefix) == (command, None, 0, prefix)


@pytest.mark.parametrize(
    ("prefix", "terminator"), [(Prefix.NONE, b"\n"), (Prefix.N, b"\n"), (Prefix.Z, b"\0")]
)
def test_reply_terminator_matches_the_prefix(prefix, terminator):
    """A reply ends with NUL for z commands and with a newline otherwise."""
    assert Request("PING", None, 0, prefix).reply("PONG") == b"PONG" + terminator


@pytest.mark.parametrize(
    ("packet", "reply"),
    [
        (b"INSTREAM", b"UNKNOWN COMMAND\n"),
        (b"INSTREAM\n", b"UNKNOWN COMMAND\n"),
        (b"ALLMATCHSCAN /tmp", b"UNKNOWN COMMAND\n"),
        (b"IDSESSION", b"UNKNOWN COMMAND\n"),
        (b"STATS", b"UNKNOWN COMMAND\n"),
        (b"END", b"UNKNOWN COMMAND\n"),
        (b"VERSIONCOMMANDS", b"UNKNOWN COMMAND\n"),
        (b"FOO", b"UNKNOWN COMMAND\n"),
        (b" PING", b"UNKNOWN COMMAND\n"),
        (b"xPING\n", b"UNKNOWN COMMAND\n"),
        (b"nFOO\n", b"UNKNOWN COMMAND\n"),
        (b"nping\n", b"UNKNOWN COMMAND\n"),
        (b"nPING \n", b"UNKNOWN COMMAND\n"),
        (b"nPINGX\n", b"UNKNOWN COMMAND\n"),
        (b"nSCAN\n", b"UNKNOWN COMMAND\n"),
        (b"nEND\n", b"UNKNOWN COMMAND\n"),
        (b"n\n", b"UNKNOWN COMMAND\n"),
        (b"z\0", b"UNKNOWN COMMAND\0"),
        (b"nINSTREAM \n", b"UNKNOWN COMMAND\n"),
        (b"nSCAN /a\0b\n", b"Error processing command. ERROR\n"),
    ],
)
def test_unknown_and_malformed_commands_get_clamds_reply(packet, reply):
    """What clamd 1.4.6 answers UNKNOWN COMMAND to (a deliberate ERROR for a NUL in an n command)."""
    assert error_reply(packet) == reply


def test_path_argument_keeps_every_byte():
    """A path argument survives as given: spaces, a leading space, newlines in z paths, non-UTF-8 bytes."""
    assert only_request(b"nSCAN /a b/c\n").argument == "/a b/c"
    assert only_request(b"nSCAN  /lead\n").argument == " /lead"
    assert only_request(b"nSCAN \n").argument == ""
    assert only_request(b"zSCAN /a\nb\0").argument == "/a\nb"
    odd = only_request(b"nMULTISCAN /tmp/\xff\xfe\n")
    assert odd.argument is not None
    assert encode_text(odd.argument) == b"/tmp/\xff\xfe"
    assert odd.reply(f"{odd.argument}: OK") == b"/tmp/\xff\xfe: OK\n"


def test_one_command_per_connection_outside_a_session():
    """Outside a session only the first command counts, as in clamd."""
    events, error, parser = parse(b"nPING\nnVERSION\n")
    assert error is None
    assert [e.command for e in events] == ["PING"]
    assert parser.done
    parser.receive(b"nPING\n")
    assert parser.next_event() is None


def test_unprefixed_command_is_the_first_packet():
    """An unprefixed command is delimited by its packet, so a split one is unknown (as in clamd)."""
    assert error_reply(b"PI", b"NG") == b"UNKNOWN COMMAND\n"


def test_prefixed_command_waits_for_its_terminator():
    """A z or n command may arrive in pieces; nothing happens until the terminator."""
    events, error, parser = parse(b"zVER", b"SI", b"ON")
    assert (events, error, parser.done) == ([], None, False)
    parser.receive(b"\0")
    assert parser.next_event() == Request("VERSION", None, 0, Prefix.Z)


def test_session_numbers_commands_and_ends():
    """Inside IDSESSION commands are numbered from 1, and END closes the session."""
    events, error, parser = parse(b"nIDSESSION\nnPING\nzVERSION\0nSCAN /x\nnEND\n")
    assert error is None
    assert [(e.command, e.number, e.prefix) for e in events] == [
        ("PING", 1, Prefix.N),
        ("VERSION", 2, Prefix.Z),
        ("SCAN", 3, Prefix.N),
        ("END", 4, Prefix.N),
    ]
    assert parser.done
    assert events[1].reply("x") == b"2: x\0"


@pytest.mark.parametrize(
    "command",
    [
        b"CONTSCAN /tmp",
        b"MULTISCAN /tmp",
        b"ALLMATCHSCAN /tmp",
        b"RELOAD",
        b"SHUTDOWN",
        b"QUIT",
        b"IDSESSION",
        b"FOO",
        b"",
        b"SCAN",
    ],
)
def test_commands_invalid_inside_a_session(command):
    """What clamd refuses inside IDSESSION gets the numbered ERROR and ends the connection."""
    assert (
        error_reply(b"zIDSESSION\0zPING\0z" + command + b"\0")
        == b"2: Command invalid inside IDSESSION. ERROR\0"
    )


def test_unprefixed_command_inside_a_session_gets_an_error():
    """clamd hangs on an unprefixed command inside a session; we answer with an ERROR."""
    reply = error_reply(b"nIDSESSION\nnPING\nPING\n")
    assert reply == b"2: Only nCMDS\\n and zCMDS\\0 are accepted inside IDSESSION. ERROR\n"


def test_instream_chunks_and_end():
    """INSTREAM yields the request, each chunk's bytes, and the end with the total size."""
    events, error, parser = parse(b"zINSTREAM\0" + chunk(b"abc") + chunk(b"defg") + chunk(b""))
    assert error is None
    assert events == [
        Request("INSTREAM", None, 0, Prefix.Z),
        StreamChunk(b"abc"),
        StreamChunk(b"defg"),
        StreamEnd(7),
    ]
    assert parser.done


def test_instream_quota_is_inclusive():
    """A stream of exactly StreamMaxLength is accepted; one byte more is refused at its chunk header."""
    _, error, _ = parse(b"nINSTREAM\n" + chunk(b"a" * QUOTA) + chunk(b""))
    assert error is None
    reply = error_reply(b"nINSTREAM\n" + chunk(b"a" * 600) + struct.pack("!L", QUOTA - 599))
    assert reply == b"INSTREAM size limit exceeded. ERROR\n"


def test_instream_in_a_session_goes_back_to_commands():
    """After a session's stream ends, the next command is read, and limits carry the number."""
    events, error, _ = parse(
        b"nIDSESSION\nnINSTREAM\n" + chunk(b"x") + chunk(b"") + b"nINSTREAM\n" + struct.pack("!L", QUOTA + 1)
    )
    assert [type(e).__name__ for e in events] == ["Request", "StreamChunk", "StreamEnd", "Request"]
    assert error is not None
    assert error.reply == b"2: INSTREAM size limit exceeded. ERROR\n"


def test_fildes_waits_for_the_byte_that_carries_the_descriptor():
    """FILDES completes only with the byte after it (which carries SCM_RIGHTS), which is consumed."""
    events, _, parser = parse(b"zIDSESSION\0zFILDES\0")
    assert events == []
    assert parser.awaiting_descriptor
    parser.receive(b"\0zFILDES\0\0zEND\0")
    got = []
    while (event := parser.next_event()) is not None:
        got.append(event)
    assert [(e.command, e.number) for e in got] == [("FILDES", 1), ("FILDES", 2), ("END", 3)]


def test_command_too_long():
    """A command longer than the limit is refused, not buffered without end."""
    reply = error_reply(b"nSCAN /" + b"a" * 9000)
    assert reply == b"Command too long. ERROR\n"


def test_reply_prefix_for_a_partial_command():
    """A timeout reply to a half-sent z command uses the NUL terminator."""
    _, _, parser = parse(b"zPIN")
    assert parser.reply_prefix is Prefix.Z


def test_protocol_error_is_the_agents_protocol_error():
    """The parser's only error is a subclass of agent.errors.ProtocolError."""
    assert issubclass(ClamdProtocolError, ProtocolError)


# ---------------------------------------------------------------- fuzzing

packets = st.lists(st.binary(max_size=64), max_size=12)
command_words = st.sampled_from([*COMMANDS, "FOO", ""])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packets, st.integers(min_value=1, max_value=4096))
def test_garbage_raises_only_protocol_errors(data, quota):
    """Arbitrary packets yield events or a ClamdProtocolError with a framed reply, nothing else."""
    events, error, parser = parse(*data, quota=quota)
    assert len(events) <= sum(len(p) for p in data) + 1
    for event in events:
        assert isinstance(event, Request | StreamChunk | StreamEnd)
    if error is not None:
        assert error.reply.endswith((b"\0", b"\n"))
        assert parser.done


@st.composite
def prefixed_inputs(draw):
    """Mostly well-formed z/n traffic with garbage, NULs, huge lengths and missing terminators mixed in."""
    parts = [draw(st.sampled_from([b"zIDSESSION\0", b"nIDSESSION\n", b""]))]
    for _ in range(draw(st.integers(0, 6))):
        prefix, term = draw(st.sampled_from([(b"z", b"\0"), (b"n", b"\n")]))
        word = draw(command_words).encode()
        arg = draw(st.sampled_from([b"", b" /tmp/x", b" /a\0b", b" " + draw(st.binary(max_size=12))]))
        ending = draw(st.sampled_from([term, term, b""]))
        parts.append(prefix + word + arg + ending)
        if word == b"INSTREAM":
            for _ in range(draw(st.integers(0, 3))):
                size = draw(st.one_of(st.integers(0, 40), st.integers(0, 2**32 - 1)))
                parts.append(struct.pack("!L", size) + draw(st.binary(max_size=40)))
        if word == b"FILDES":
            parts.append(draw(st.binary(max_size=1)))
    return b"".join(parts)


def _splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def _normal(events: list) -> list:
    """Events with stream chunks merged, so differently split inputs compare equal."""
    out: list = []
    for event in events:
        if isinstance(event, StreamChunk) and out and isinstance(out[-1], StreamChunk):
            out[-1] = StreamChunk(out[-1].data + event.data)
        else:
            out.append(event)
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prefixed_inputs(), st.lists(st.integers(min_value=0), max_size=10))
def test_prefixed_traffic_parses_the_same_however_it_is_split(data, cuts):
    """For z/n commands the packet boundaries do not matter: same events, same error reply."""
    whole_events, whole_error, _ = parse(data)
    split_events, split_error, _ = parse(*_splits(data, cuts))
    assert _normal(split_events) == _normal(whole_events)
    assert (split_error and split_error.reply) == (whole_error and whole_error.reply)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(min_size=1, max_size=300), max_size=8), st.lists(st.integers(min_value=0), max_size=8)
)
def test_stream_round_trip(pieces, cuts):
    """Whatever the chunking and packet splits, the stream's bytes come out whole and in order."""
    body = b"".join(chunk(p) for p in pieces) + chunk(b"")
    events, error, parser = parse(*_splits(b"nINSTREAM\n" + body, cuts), quota=10_000)
    assert error is None
    assert parser.done
    assert b"".join(e.data for e in events if isinstance(e, StreamChunk)) == b"".join(pieces)
    assert events[-1] == StreamEnd(sum(map(len, pieces)))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=400), max_size=8), st.integers(min_value=1, max_value=1500)
)
def test_quota_is_enforced_at_the_first_chunk_past_it(sizes, quota):
    """The stream is refused exactly when a chunk takes the running total past the quota."""
    body = b"".join(chunk(b"x" * n) for n in sizes) + chunk(b"")
    _, error, _ = parse(b"nINSTREAM\n" + body, quota=quota)
    running = [sum(sizes[: i + 1]) for i in range(len(sizes))]
    assert (error is not None) == any(total > quota for total in running)
    if error is not None:
        assert error.reply == b"INSTREAM size limit exceeded. ERROR\n"


@given(st.integers(min_value=QUOTA + 1, max_value=2**32 - 1))
def test_huge_length_is_refused_without_waiting_for_data(size):
    """A length prefix past the quota is refused at once, before any of its data arrives."""
    assert error_reply(b"zINSTREAM\0" + struct.pack("!L", size)) == b"INSTREAM size limit exceeded. ERROR\0"


@given(st.binary(min_size=0, max_size=3))
def test_truncated_length_waits(partial):
    """Fewer than four bytes of a length prefix is not yet anything: the parser waits."""
    events, error, parser = parse(b"nINSTREAM\n" + partial)
    assert error is None
    assert events == [Request("INSTREAM", None, 0, Prefix.N)]
    assert parser.in_stream


_path_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=15)


@given(st.tuples(_path_text, _path_text).map("\0".join))
def test_nul_in_paths(path):
    """A NUL in an n command's path is refused; in a z command it ends the command there."""
    raw = path.encode()
    assert error_reply(b"nSCAN /" + raw.replace(b"\n", b"") + b"\n") == b"Error processing command. ERROR\n"
    request = only_request(b"zSCAN /" + raw + b"\0")
    assert request.argument is not None
    assert "\0" not in request.argument


@given(st.binary(max_size=200).filter(lambda b: b"\0" not in b and b"\n" not in b))
def test_missing_terminator_waits_until_the_length_limit(body):
    """Without its terminator a command is incomplete, never guessed at."""
    for prefix in (b"z", b"n"):
        events, error, parser = parse(prefix + body)
        assert (events, error, parser.done) == ([], None, False)


# ---------------------------------------------------------------- replies


def _outcome(kind: VerdictKind, detections=(), reason="") -> Outcome:
    return Outcome(
        ScanRequest(path="/secret/place/file.eml"),
        Verdict(kind, tuple(detections), reason),
        None,
        None,
        None,
        0.0,
    )


SIG = Detection("Eicar-Test-Signature", "hash", member="inner/secret-member.txt")
RULE = Detection("EICAR_Test_File", "yara")
LIMIT = Detection("Limits.Exceeded.MaxRecursion", "limit", "limit")


@pytest.mark.parametrize(
    ("outcome", "statuses", "kind"),
    [
        (_outcome(VerdictKind.CLEAN), ("OK",), "ok"),
        (_outcome(VerdictKind.MALICIOUS, [SIG, RULE]), ("Eicar-Test-Signature FOUND",), "infected"),
        (_outcome(VerdictKind.MALICIOUS, [LIMIT, RULE]), ("EICAR_Test_File FOUND",), "infected"),
        (_outcome(VerdictKind.SUSPICIOUS, [RULE]), ("EICAR_Test_File FOUND",), "infected"),
        (_outcome(VerdictKind.UNSCANNED, [LIMIT]), ("Limits.Exceeded.MaxRecursion FOUND",), "infected"),
        (_outcome(VerdictKind.UNSCANNED, []), ("Limits.Exceeded FOUND",), "infected"),
        (_outcome(VerdictKind.ERROR, reason="permission denied"), ("permission denied ERROR",), "error"),
        (_outcome(VerdictKind.ERROR, reason="bad\nline\0"), ("bad line  ERROR",), "error"),
        (_outcome(VerdictKind.ERROR), ("Scan failed ERROR",), "error"),
    ],
)
def test_outcome_to_status(outcome, statuses, kind):
    """Verdicts map to clamd statuses; an unscanned object is FOUND with its limit, never OK."""
    assert outcome_statuses(outcome) == (statuses, kind)


def test_allmatch_lists_every_detection_once():
    """ALLMATCHSCAN gets one status per distinct detection name."""
    statuses, _ = outcome_statuses(_outcome(VerdictKind.MALICIOUS, [SIG, RULE, SIG]), allmatch=True)
    assert statuses == ("Eicar-Test-Signature FOUND", "EICAR_Test_File FOUND")


def test_nothing_else_of_the_outcome_reaches_the_reply():
    """Paths, members and hashes of the outcome never appear in a status."""
    text = " ".join(outcome_statuses(_outcome(VerdictKind.MALICIOUS, [SIG, RULE]), allmatch=True)[0])
    assert "secret" not in text
    assert "inner" not in text


def test_versioncommands_lists_clamds_commands():
    """VERSIONCOMMANDS is the version, then clamd 1.4.6's command list, byte for byte."""
    assert versioncommands("endpoint-agent 0.1.0/abc") == (
        "endpoint-agent 0.1.0/abc| COMMANDS: SCAN QUIT RELOAD PING CONTSCAN VERSIONCOMMANDS VERSION END "
        "SHUTDOWN MULTISCAN FILDES STATS IDSESSION INSTREAM DETSTATSCLEAR DETSTATS ALLMATCHSCAN"
    )


def test_stats_layout():
    """STATS follows clamd's layout and ends with END."""
    body = stats_body(
        {"threads_live": 2, "threads_idle": 1, "threads_max": 4, "queue": 3, "scanned": 9},
        connections=5,
        idle_timeout=30,
    )
    lines = body.split("\n")
    assert lines[:6] == [
        "POOLS: 1",
        "",
        "STATE: VALID PRIMARY",
        "THREADS: live 2  idle 1 max 4 idle-timeout 30",
        "QUEUE: 3 items",
        "CONNECTIONS: 5",
    ]
    assert "SCANNED: 9" in lines
    assert lines[-1] == "END"


@pytest.mark.parametrize(
    ("kinds", "all_clear"),
    [
        ([], True),
        (["ok"], True),
        (["error"], False),
        (["ok", "error"], True),
        (["infected"], False),
        (["ok", "infected"], False),
    ],
)
def test_tally_decides_the_final_ok(kinds, all_clear):
    """The final OK line comes when nothing was found and not everything failed (as clamd)."""
    tally = Tally()
    for kind in kinds:
        tally.add(kind)
    assert tally.all_clear is all_clear


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::", "localhost", "example.invalid"])  # noqa: S104 - refused hosts
def test_tcp_host_must_be_loopback(tmp_path, host):
    """A non-loopback (or non-literal) TCP host is refused with a clear error naming the key."""
    with pytest.raises(ConfigError, match=r"clamd\.tcp_host: .*loopback only"):
        ClamdSettings(socket_path=tmp_path / "s", tcp_host=host)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1"])
def test_loopback_hosts_are_accepted(tmp_path, host):
    """IPv4 and IPv6 loopback addresses are fine."""
    assert ClamdSettings(socket_path=tmp_path / "s", tcp_host=host).tcp_host == host


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tcp_port", 70000),
        ("socket_mode", 0o1777),
        ("stream_max_length", 0),
        ("read_timeout", 0),
        ("max_connections", 0),
        ("in_memory_max", -1),
    ],
)
def test_bad_settings_name_their_key(tmp_path, field, value):
    """Each out-of-range setting is a ConfigError that names it."""
    with pytest.raises(ConfigError, match=rf"clamd\.{field}"):
        ClamdSettings(socket_path=tmp_path / "s", **{field: value})


def test_default_settings():
    """The defaults: 0660 socket, no TCP, clamd's StreamMaxLength of 100 MiB."""
    defaults = ClamdSettings(socket_path=__import__("pathlib").Path("/x"))
    assert (defaults.socket_mode, defaults.tcp_port, defaults.tcp_host) == (0o660, 0, "127.0.0.1")
    assert defaults.stream_max_length == 100 << 20
