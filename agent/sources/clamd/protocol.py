r"""clamd's wire protocol without I/O: command framing, INSTREAM chunks and reply bytes.

The framing, as clamd 1.4.6 does it (checked against a running clamd):

- ``z<COMMAND>\0`` and ``n<COMMAND>\n``; a reply ends with its command's terminator. A trailing
  ``\r`` before ``\n`` is ignored.
- An unprefixed command is the connection's first packet (up to a newline). Only the old commands
  are accepted that way: unprefixed ``INSTREAM``, ``ALLMATCHSCAN``, ``IDSESSION``, ``STATS``,
  ``END`` and ``VERSIONCOMMANDS`` answer ``UNKNOWN COMMAND``.
- Outside a session a connection carries one command; ``IDSESSION`` starts a session in which the
  commands are numbered from 1, replies read ``<n>: <reply>``, and ``END`` ends it.
- ``INSTREAM`` is followed by chunks: a 4-byte network-order length, then that many bytes; a zero
  length ends the stream. A chunk that takes the total past StreamMaxLength is refused.
- ``FILDES`` is followed by one byte, the one that carries the descriptor (SCM_RIGHTS).

:class:`Parser` turns received bytes into events (:class:`Request`, :class:`StreamChunk`,
:class:`StreamEnd`). Input that ends the conversation raises :class:`ClamdProtocolError`, whose
``reply`` holds the exact bytes to send before closing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from agent.errors import ProtocolError

__all__ = [
    "COMMANDS",
    "MAX_COMMAND_LENGTH",
    "ClamdProtocolError",
    "Event",
    "Parser",
    "Prefix",
    "Request",
    "StreamChunk",
    "StreamEnd",
    "decode_text",
    "encode_text",
    "format_reply",
]

MAX_COMMAND_LENGTH = 8192  # PATH_MAX (4096) and a command name, with room to spare


@dataclass(frozen=True, slots=True)
class _Spec:
    needs_argument: bool
    old_style: bool  # accepted without a z/n prefix
    in_session: bool  # accepted inside IDSESSION


# In clamd's VERSIONCOMMANDS order.
COMMANDS: dict[str, _Spec] = {
    "SCAN": _Spec(needs_argument=True, old_style=True, in_session=True),
    "QUIT": _Spec(needs_argument=False, old_style=True, in_session=False),
    "RELOAD": _Spec(needs_argument=False, old_style=True, in_session=False),
    "PING": _Spec(needs_argument=False, old_style=True, in_session=True),
    "CONTSCAN": _Spec(needs_argument=True, old_style=True, in_session=False),
    "VERSIONCOMMANDS": _Spec(needs_argument=False, old_style=False, in_session=True),
    "VERSION": _Spec(needs_argument=False, old_style=True, in_session=True),
    "END": _Spec(needs_argument=False, old_style=False, in_session=True),
    "SHUTDOWN": _Spec(needs_argument=False, old_style=True, in_session=False),
    "MULTISCAN": _Spec(needs_argument=True, old_style=True, in_session=False),
    "FILDES": _Spec(needs_argument=False, old_style=True, in_session=True),
    "STATS": _Spec(needs_argument=False, old_style=False, in_session=True),
    "IDSESSION": _Spec(needs_argument=False, old_style=False, in_session=False),
    "INSTREAM": _Spec(needs_argument=False, old_style=False, in_session=True),
    "DETSTATSCLEAR": _Spec(needs_argument=False, old_style=True, in_session=False),
    "DETSTATS": _Spec(needs_argument=False, old_style=True, in_session=False),
    "ALLMATCHSCAN": _Spec(needs_argument=True, old_style=False, in_session=False),
}

_UNPREFIXED_IN_SESSION = "Only nCMDS\\n and zCMDS\\0 are accepted inside IDSESSION. ERROR"


class Prefix(enum.Enum):
    """How a command was framed; the reply is framed the same way."""

    Z = "z"
    N = "n"
    NONE = ""

    @property
    def terminator(self) -> bytes:
        """The byte that ends a command and its reply."""
        return b"\0" if self is Prefix.Z else b"\n"


def decode_text(raw: bytes) -> str:
    """Command bytes as text; undecodable bytes survive as surrogates, like os.fsdecode."""
    return raw.decode("utf-8", "surrogateescape")


def encode_text(text: str) -> bytes:
    """The inverse of :func:`decode_text`, so a path is echoed back byte for byte."""
    return text.encode("utf-8", "surrogateescape")


def format_reply(text: str, number: int, prefix: Prefix) -> bytes:
    """One reply: ``<n>: `` inside a session (``number`` > 0), then the text and the terminator."""
    head = f"{number}: {text}" if number else text
    return encode_text(head) + prefix.terminator


@dataclass(frozen=True, slots=True)
class Request:
    """A complete command. ``number`` is its 1-based position in a session, 0 outside one."""

    command: str
    argument: str | None
    number: int
    prefix: Prefix

    def reply(self, text: str) -> bytes:
        """The framed reply ``text`` to this request."""
        return format_reply(text, self.number, self.prefix)


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """Bytes of the current INSTREAM."""

    data: bytes


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The current INSTREAM ended (a zero-length chunk); ``size`` is its total length."""

    size: int


Event = Request | StreamChunk | StreamEnd
"""What :meth:`Parser.next_event` yields."""


_NO_REQUEST = Request("", None, 0, Prefix.N)


class ClamdProtocolError(ProtocolError):
    """The peer broke the protocol or hit a limit; send ``reply``, then close the connection.

    ``reason`` is a short fixed slug for logs; it never holds peer data.
    """

    def __init__(self, reason: str, reply: bytes) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reply = reply


class _State(enum.Enum):
    START = enum.auto()  # nothing parsed yet: the only place an unprefixed command may appear
    COMMAND = enum.auto()  # waiting for a prefixed command (inside a session)
    STREAM_HEADER = enum.auto()
    STREAM_DATA = enum.auto()
    FILDES_BYTE = enum.auto()  # FILDES parsed, waiting for the byte that carries the descriptor
    DONE = enum.auto()


def _parse_command(text: str, *, old_style: bool) -> tuple[str, str | None] | None:
    """``(name, argument)`` for a well-formed command, else None (clamd's UNKNOWN COMMAND)."""
    name, sep, argument = text.partition(" ")
    spec = COMMANDS.get(name)
    if spec is None or (old_style and not spec.old_style):
        return None
    if spec.needs_argument:
        return (name, argument) if sep else None
    return None if sep else (name, None)


class Parser:
    """Turns one connection's received bytes into events. Never does I/O; never blocks.

    Call :meth:`receive` with each packet as it arrives (the first packet delimits an unprefixed
    command, as in clamd), then :meth:`next_event` until it returns None.
    """

    def __init__(self, *, stream_max_length: int, max_command_length: int = MAX_COMMAND_LENGTH) -> None:
        self._buffer = bytearray()
        self._state = _State.START
        self._first_packet = -1
        self._session = False
        self._number = 0
        self._quota = stream_max_length
        self._stream_max = stream_max_length
        self._remaining = 0
        self._streamed = 0
        self._max_command = max_command_length
        self._current = _NO_REQUEST

    @property
    def done(self) -> bool:
        """No further events will come: the command is complete, or the session ended."""
        return self._state is _State.DONE

    @property
    def in_session(self) -> bool:
        """An IDSESSION is open."""
        return self._session

    @property
    def in_stream(self) -> bool:
        """INSTREAM chunks are being received."""
        return self._state in {_State.STREAM_HEADER, _State.STREAM_DATA}

    @property
    def awaiting_descriptor(self) -> bool:
        """FILDES was parsed and the byte that carries the descriptor has not arrived yet."""
        return self._state is _State.FILDES_BYTE

    @property
    def current(self) -> Request | None:
        """The request being received (an INSTREAM or a FILDES), if any."""
        return self._current if self.in_stream or self.awaiting_descriptor else None

    @property
    def reply_prefix(self) -> Prefix:
        """The framing to use for a reply not tied to a request (a timeout, say)."""
        if self._state in {_State.START, _State.COMMAND} and self._buffer[:1] == b"z":
            return Prefix.Z
        return self._current.prefix

    def receive(self, data: bytes) -> None:
        """Buffer one received packet."""
        if self._state is _State.DONE:
            return  # clamd ignores what follows a finished command
        if self._first_packet < 0 and data:
            self._first_packet = len(data)
        self._buffer += data

    def next_event(self) -> Event | None:
        """The next event, or None when more bytes are needed (or :attr:`done`)."""
        while True:
            state = self._state
            event: Event | None
            if state is _State.DONE or not self._buffer:
                return None
            if state is _State.STREAM_HEADER:
                event = self._stream_header()
            elif state is _State.STREAM_DATA:
                return self._stream_data()
            elif state is _State.FILDES_BYTE:
                return self._fildes_byte()
            elif state is _State.START and self._buffer[0] not in b"zn":
                event = self._unprefixed()
            else:
                event = self._prefixed()
            if event is not None or self._state is state:
                return event

    def _unprefixed(self) -> Request | None:
        packet = bytes(self._buffer[: self._first_packet])
        end = min((i for i in (packet.find(b"\n"), packet.find(b"\0")) if i >= 0), default=len(packet))
        del self._buffer[: min(end + 1, len(packet))]
        if end > self._max_command:
            raise self._fail("command_too_long", "Command too long. ERROR", 0, Prefix.NONE)
        text = decode_text(packet[:end]).rstrip("\r\n")
        return self._dispatch(_parse_command(text, old_style=True), Prefix.NONE)

    def _prefixed(self) -> Request | None:
        prefix = {ord("z"): Prefix.Z, ord("n"): Prefix.N}.get(self._buffer[0])
        if prefix is None:  # only reachable inside a session: clamd would hang; we answer
            raise self._fail("unprefixed_in_session", _UNPREFIXED_IN_SESSION, self._number + 1, Prefix.N)
        end = self._buffer.find(prefix.terminator)
        if end < 0:
            if len(self._buffer) > self._max_command:
                raise self._fail("command_too_long", "Command too long. ERROR", self._next_number(), prefix)
            return None
        raw = bytes(self._buffer[1:end])
        del self._buffer[: end + 1]
        if len(raw) > self._max_command:
            raise self._fail("command_too_long", "Command too long. ERROR", self._next_number(), prefix)
        if b"\0" in raw:  # only possible with the n prefix: no path can hold a NUL
            raise self._fail(
                "malformed_command", "Error processing command. ERROR", self._next_number(), prefix
            )
        text = decode_text(raw)
        if prefix is Prefix.N:
            text = text.rstrip("\r")
        return self._dispatch(_parse_command(text, old_style=False), prefix)

    def _next_number(self) -> int:
        return self._number + 1 if self._session else 0

    def _dispatch(self, parsed: tuple[str, str | None] | None, prefix: Prefix) -> Request | None:
        if self._session:
            self._number += 1
            if parsed is None or not COMMANDS[parsed[0]].in_session:
                raise self._fail(
                    "invalid_in_session", "Command invalid inside IDSESSION. ERROR", self._number, prefix
                )
        elif parsed is None or parsed[0] == "END":
            raise self._fail("unknown_command", "UNKNOWN COMMAND", 0, prefix)
        name, argument = parsed
        if name == "IDSESSION":
            self._session = True
            self._state = _State.COMMAND
            return None
        request = Request(name, argument, self._number if self._session else 0, prefix)
        self._current = request
        if name == "INSTREAM":
            self._quota, self._streamed = self._stream_max, 0
            self._state = _State.STREAM_HEADER
        elif name == "FILDES":
            self._state = _State.FILDES_BYTE
            return None
        else:
            self._state = _State.COMMAND if self._session and name != "END" else _State.DONE
        return request

    def _fildes_byte(self) -> Request:
        del self._buffer[:1]  # the byte that carried the descriptor; its value does not matter
        self._state = _State.COMMAND if self._session else _State.DONE
        return self._current

    def _stream_header(self) -> StreamEnd | None:
        if len(self._buffer) < 4:
            return None
        size = int.from_bytes(self._buffer[:4], "big")
        del self._buffer[:4]
        if size == 0:
            self._state = _State.COMMAND if self._session else _State.DONE
            return StreamEnd(self._streamed)
        if size > self._quota:
            current = self._current
            raise self._fail(
                "stream_too_large", "INSTREAM size limit exceeded. ERROR", current.number, current.prefix
            )
        self._quota -= size
        self._remaining = size
        self._state = _State.STREAM_DATA
        return None

    def _stream_data(self) -> StreamChunk:
        take = min(self._remaining, len(self._buffer))
        data = bytes(self._buffer[:take])
        del self._buffer[:take]
        self._remaining -= take
        self._streamed += take
        if self._remaining == 0:
            self._state = _State.STREAM_HEADER
        return StreamChunk(data)

    def _fail(self, reason: str, text: str, number: int, prefix: Prefix) -> ClamdProtocolError:
        self._state = _State.DONE
        self._buffer.clear()
        return ClamdProtocolError(reason, format_reply(text, number, prefix))
