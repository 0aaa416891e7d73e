"""The server side of one ZEO 5 connection as a pure state machine.

:class:`ServerSession` takes the bytes a client sent and turns them into
events; it turns replies, errors and callbacks into the bytes to send.  It
never touches a socket, a loop or a storage: :mod:`zeo.storageserver.net`
moves the bytes and acts on the events, :class:`~zeo.storageserver.zeostorage.ZEOStorage`
runs the calls.  So every rule of the conversation (PROTOCOL.md sections 2
and 3) can be tested by feeding bytes:

* The server speaks first, announcing its one protocol (``M5`` or ``Z5``).
* During the handshake a client may send ``ruok`` instead: it gets a status
  and the connection ends.  Any other answer than the announced protocol
  ends it too (a client asking for the other encoding is told about the
  ``msgpack`` option).
* After the handshake every frame is a message.  msgid -1 is a heartbeat and
  is ignored.  A method the protocol does not know, a call before
  ``register``, a second ``register``, arguments of the wrong shape
  (:mod:`.signatures`) or a one-way call the storage cannot serve are
  protocol violations: the connection is closed.  A two-way call the storage
  cannot serve gets an ``AttributeError`` reply and the connection lives on.

:meth:`ServerSession.receive` yields its events lazily, one per message, so
the effect of one call (``register`` widening what may be called) applies to
the next message of the same read.
"""

from collections.abc import Callable, Container, Iterator
from typing import Any, NamedTuple

from ..exceptions import ProtocolError
from .framing import FrameDecoder, frame
from .marshal import encoder, reduce_exception, server_decoder
from .signatures import CHECKERS, Checker

HANDSHAKE = "handshake"
OPEN = "open"
CLOSED = "closed"


class StatusRequested(NamedTuple):
    """The client sent ``ruok``: send it :meth:`ServerSession.status`; it ends."""


class Connected(NamedTuple):
    """The client accepted the announced protocol: its calls follow."""

    protocol: bytes


class Call(NamedTuple):
    """A well-formed call to a method the session may serve now.

    On the hot path a call comes out as the plain 4-tuple the decoder made,
    not as this class (one allocation less per message): it compares equal
    to ``Call(...)``, and ``is_call`` tells it from the other events, which
    are all of their own classes.
    """

    msgid: int
    one_way: bool
    name: str
    args: tuple


class Refused(NamedTuple):
    """A two-way call the storage cannot serve: send *reply*, carry on."""

    msgid: int
    error: AttributeError
    reply: bytes


class Close(NamedTuple):
    """The client broke the protocol: close the connection (*reason* says how)."""

    reason: str


Event = StatusRequested | Connected | Call | Refused | Close | tuple


def is_call(event: Event) -> bool:
    """True for a call (a plain tuple or a :class:`Call`)."""
    return type(event) is tuple or type(event) is Call


class ServerSession:
    """What one connection has said so far, and what it may say next.

    *protocol* is the server's protocol (``b"M5"`` or ``b"Z5"``).  *encode*
    lets every connection share the server's encoder (broadcasts are encoded
    once with it).  After :class:`Connected` the owner says, with
    :meth:`allow`, which methods may be called; it says so again when the
    client has registered.
    """

    __slots__ = (
        "protocol",
        "state",
        "encode",
        "registered",
        "_allowed",
        "_checkers",
        "_decode",
        "_frames",
    )

    def __init__(
        self,
        protocol: bytes,
        encode: Callable[..., bytes] | None = None,
        checkers: dict[str, Checker] = CHECKERS,
    ) -> None:
        self.protocol = protocol
        self.state = HANDSHAKE
        self.encode = encode if encode is not None else encoder(protocol, server=True)
        self.registered = False
        self._allowed: Container[str] = ()
        self._checkers = checkers
        self._decode = server_decoder(protocol)
        self._frames = FrameDecoder()

    # -- bytes in, events out ---------------------------------------------------

    def greeting(self) -> bytes:
        """The first frame of every connection: the protocol announcement."""
        return frame(self.protocol)

    def allow(self, methods: Container[str], registered: bool) -> None:
        """Say which methods the client may call from the next message on."""
        self._allowed = methods
        self.registered = registered

    def receive(self, data: bytes) -> Iterator[Event]:
        """The events the bytes *data* complete, in wire order.

        Nothing more comes out once a :class:`Close` or
        :class:`StatusRequested` event was produced.
        """
        if self.state == CLOSED:
            return
        try:
            payloads = self._frames.feed(data)
        except ProtocolError as exc:
            yield self._close(str(exc))
            return
        for payload in payloads:
            if self.state == OPEN:
                event = self._message(payload)
            elif self.state == HANDSHAKE:
                event = self._handshake(payload)
            else:
                return
            if event is not None:
                yield event

    def _handshake(self, payload: bytes) -> Event:
        if payload == b"ruok":
            self.state = CLOSED
            return StatusRequested()
        if payload == self.protocol:
            self.state = OPEN
            return Connected(payload)
        if payload[:1] in (b"M", b"Z") and payload[1:] == b"5":
            return self._close(
                f"client asked for protocol {payload!r} but this server speaks "
                f"only {self.protocol!r} (see the msgpack option)"
            )
        return self._close(f"bad handshake {payload[:20]!r}")

    def _message(self, payload: bytes) -> Event | None:
        try:
            message = self._decode(payload)
        except ProtocolError as exc:
            return self._close(str(exc))
        msgid, one_way, name, args = message
        if msgid == -1:
            return None  # heartbeat
        if name not in self._allowed:
            return self._refuse(msgid, one_way, name)
        problem = self._checkers[name](args)
        if problem is not None:
            return self._close(f"bad arguments: {problem}")
        return message  # the decoder's 4-tuple is the call (see Call)

    def _refuse(self, msgid: int, one_way: bool, name: str) -> Event:
        if name not in self._checkers:
            return self._close(f"unknown method {str(name)[:80]!r}")
        if not self.registered:
            return self._close(f"{name} called before register")
        if name == "register":
            return self._close("register called twice")
        if one_way:
            return self._close(f"one-way call {name} is not supported by this storage")
        error = AttributeError(f"{name} is not supported by this storage")
        return Refused(msgid, error, self.error(msgid, error))

    def _close(self, reason: str) -> Close:
        self.state = CLOSED
        return Close(reason)

    # -- what to send -----------------------------------------------------------

    def status(self, text: bytes) -> bytes:
        """The answer to ``ruok``: the status text as one frame."""
        return frame(text)

    def reply(self, msgid: int, value: Any) -> bytes:
        """The reply frame carrying *value*; raises if *value* cannot be encoded."""
        return frame(self.encode(msgid, 0, ".reply", value))

    def error(self, msgid: int, exc: BaseException) -> bytes:
        """The error reply for *exc*; its message alone if its state cannot be encoded."""
        try:
            return frame(self.encode(msgid, 2, ".reply", reduce_exception(exc)))
        except Exception:
            name, _ = reduce_exception(exc)
            return frame(self.encode(msgid, 2, ".reply", (name, (str(exc),))))

    def callback(self, name: str, args: tuple) -> bytes:
        """A one-way message from the server (``invalidateTransaction``, ...)."""
        return frame(self.encode(0, True, name, args))

    def failed(self, call: Call | tuple, exc: BaseException) -> bytes | Close:
        """What to do when *call* raised *exc*: an error reply, or close.

        A one-way call has no reply to carry the error; the client would go
        on as if it had worked (PROTOCOL.md 3.1), so the connection ends.
        """
        msgid, one_way, name, _ = call
        if one_way:
            return self._close(
                f"one-way call {name} failed: {type(exc).__name__}: {exc}"
            )
        return self.error(msgid, exc)
