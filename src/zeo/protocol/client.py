"""The client side of one ZEO 5 connection as a pure state machine.

:class:`ClientSession` knows what the client has asked and what the server
has answered; :mod:`zeo.clientstorage.connection` moves the bytes.  It owns:

* the handshake: the server announces ``M5`` or ``Z5`` (or a later
  version); :meth:`ClientSession.answer` checks it and gives the frame that
  accepts it, fixing the encoding for the rest of the connection;
* the msgid counter and the table of calls waiting for their reply.
  Application threads register calls (:meth:`~ClientSession.register`) while
  the I/O thread completes them, so the table has a lock; a call is
  registered before its frame is written, so a fast reply always finds it.
  Loads use their ``(oid, tid)`` as msgid: a second identical load joins the
  first instead of going out again;
* reply and error dispatch: a reply runs the call's *hook* (the cache
  update) and then wakes its waiters; an error reply becomes the exception
  the server raised;
* server callbacks, yielded as :class:`Callback` events strictly in wire
  order with the replies (the consumer acts on each before the next message
  is looked at), except ``invalidateTransaction`` while the cache is being
  verified: those are held back and handed out by
  :meth:`~ClientSession.verified`, in order.

A waiter is anything with ``set_result`` and ``set_exception`` that ignores
all but the first (:class:`zeo.clientstorage.connection.Waiter`).
"""

import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, Protocol

from ..exceptions import ClientDisconnected, ProtocolError
from .framing import FrameDecoder, frame
from .marshal import PROTOCOL_VERSION, client_decoder, encoder, exception_from_wire

logger = logging.getLogger(__name__)

ENCODINGS = (b"M", b"Z")


class ConnectionLost(ClientDisconnected):
    """The connection closed while a call was waiting for its reply.

    Idempotent calls (loads, pings, ...) are retried on the next connection;
    others surface as :class:`ClientDisconnected`.
    """


class Resolvable(Protocol):
    """What waits for a reply (see the module docstring)."""

    def set_result(self, result: Any) -> None: ...

    def set_exception(self, exception: BaseException) -> None: ...


Hook = Callable[[Any], Any]


class Announced(NamedTuple):
    """The server's first frame: the protocol it speaks."""

    protocol: bytes


class Callback(NamedTuple):
    """A one-way message from the server, to be acted on now."""

    name: str
    args: tuple


class Broken(NamedTuple):
    """The server broke the protocol: close the connection."""

    error: ProtocolError


class Pause(NamedTuple):
    """The next reply must be completed on the I/O thread (see ``reader``)."""

    msgid: Any


Event = Announced | Callback | Broken | Pause


class PendingCall:
    """A call sent and not yet answered: who waits, and what to run first.

    *hook*, if set, runs with the result before any waiter wakes up; it is
    how load replies enter the cache and commits update it in wire order
    with invalidations.  *anywhere*: the hook may run on whichever thread
    reads the reply (it touches only what has a lock of its own, like the
    cache); otherwise it runs on the I/O thread or on the caller's own.
    """

    __slots__ = ("waiters", "hook", "name", "anywhere")

    def __init__(self, name: str, hook: Hook | None, anywhere: bool = False) -> None:
        self.name = name
        self.hook = hook
        self.anywhere = anywhere or hook is None
        self.waiters: list[Resolvable] = []


class ClientSession:
    """One connection's conversation with a server (see the module docstring).

    *label* names the server in messages (its address).
    """

    def __init__(self, label: object) -> None:
        self.label = label
        self.protocol_version: bytes | None = None
        self.encode: Callable[..., bytes] | None = None
        self._decode: Callable[[bytes], tuple] | None = None
        self._frames = FrameDecoder()
        self._announced = False
        self.msgids = itertools.count(1)
        self.pending: dict[Any, PendingCall] = {}
        self.pending_lock = threading.Lock()
        self.lost = False
        self.operational = False
        self.held_back: list[Callback] = []
        # The msgid an application thread reading its own reply waits for
        # (None: the I/O thread reads).  See :meth:`receive`.
        self.reader: Any = None

    # -- the handshake ------------------------------------------------------------

    def answer(self, announced: bytes) -> bytes:
        """The frame accepting the server's *announced* protocol.

        Raises :class:`ProtocolError` for an unknown protocol or one older
        than ZEO 5.
        """
        kind, version = announced[:1], announced[1:]
        if kind not in ENCODINGS or not version:
            raise ProtocolError(f"server announced an unknown protocol {announced!r}")
        if version < PROTOCOL_VERSION:
            raise ProtocolError(
                f"server speaks ZEO protocol {announced!r}; this client needs "
                f"ZEO 5 (Z5 or M5) servers"
            )
        self.protocol_version = kind + PROTOCOL_VERSION
        self.encode = encoder(self.protocol_version)
        self._decode = client_decoder(self.protocol_version)
        return frame(self.protocol_version)

    # -- bytes in, events out ---------------------------------------------------

    def receive(self, data: bytes) -> Iterator[Event]:
        """Complete the calls *data* answers and yield its other events.

        Lazy: each message is looked at only when the previous event has
        been taken, so replies and callbacks take effect in wire order.
        Nothing more comes out after a :class:`Broken` event.

        While :attr:`reader` is set (an application thread reads the
        socket for its own reply), a reply to another call whose hook must
        not run on that thread is preceded by a :class:`Pause`: the reader
        hands the rest of this generator to the I/O thread, which completes
        that reply when it resumes it.
        """
        try:
            payloads = self._frames.feed(data)
        except ProtocolError as exc:
            yield Broken(exc)
            return
        for payload in payloads:
            decode = self._decode
            if decode is None:
                # Before the answer only the announcement counts.
                if not self._announced:
                    self._announced = True
                    yield Announced(payload)
                continue
            try:
                msgid, flag, name, args = decode(payload)
            except ProtocolError as exc:
                yield Broken(exc)
                return
            if name == ".reply":
                reader = self.reader
                if reader is not None and msgid != reader and not self._anywhere(msgid):
                    yield Pause(msgid)
                self._complete(msgid, flag, args)
                continue
            if not isinstance(args, (tuple, list)):
                logger.error("callback %s from %s with bad arguments", name, self.label)
                continue
            if not self.operational and name == "invalidateTransaction":
                self.held_back.append(Callback(name, tuple(args)))
                continue
            yield Callback(name, tuple(args))

    def _anywhere(self, msgid: Any) -> bool:
        try:
            call = self.pending.get(msgid)
        except TypeError:  # unhashable: no call of ours
            return True
        return call is None or call.anywhere

    def _complete(self, msgid: Any, flag: int, args: Any) -> None:
        try:
            with self.pending_lock:
                call = self.pending.pop(msgid, None)
        except TypeError:  # an unhashable msgid (a dict): no call of ours
            call = None
        if call is None:
            if msgid != 0:
                logger.warning("reply to unknown call %r from %s", msgid, self.label)
            return
        if flag == 2:
            _fail(call, wire_exception(args))
            return
        if call.hook is not None:
            try:
                args = call.hook(args)
            except Exception as exc:
                logger.exception("processing the reply to %s failed", call.name)
                _fail(call, exc)
                return
        for waiter in call.waiters:
            waiter.set_result(args)

    def verified(self) -> list[Callback]:
        """The cache is verified: callbacks now pass; take those held back."""
        self.operational = True
        held, self.held_back = self.held_back, []
        return held

    # -- calls out ------------------------------------------------------------------

    def register(
        self,
        msgid: Any,
        name: str,
        waiter: Resolvable | None,
        hook: Hook | None,
        anywhere: bool = False,
    ) -> bool:
        """Note an outgoing call; False if an identical one is pending (it is joined).

        *anywhere*: *hook* may run on any thread (see :class:`PendingCall`).

        Raises :class:`ConnectionLost` if the connection is already gone.
        """
        with self.pending_lock:
            if self.lost:
                raise ConnectionLost(f"{name}: connection to {self.label} lost")
            call = self.pending.get(msgid)
            if call is not None:
                if waiter is not None:
                    call.waiters.append(waiter)
                return False
            call = self.pending[msgid] = PendingCall(name, hook, anywhere)
            if waiter is not None:
                call.waiters.append(waiter)
            return True

    def call(self, msgid: Any, name: str, args: tuple) -> bytes:
        """The frame of the call *name* (register it before writing it)."""
        encode = self.encode  # the hot path: no helper call
        if encode is None:
            raise ProtocolError("no call can be sent before the handshake")
        return frame(encode(msgid, False, name, args))

    def one_way(self, name: str, args: tuple) -> bytes:
        """The frame of a one-way message (no reply, nothing to register)."""
        return frame(self._encoder()(0, True, name, args))

    def heartbeat(self) -> bytes:
        """A frame the server ignores; it keeps idle connections open."""
        return frame(self._encoder()(-1, 0, ".reply", None))

    def _encoder(self) -> Callable[..., bytes]:
        if self.encode is None:
            raise ProtocolError("no call can be sent before the handshake")
        return self.encode

    def lose(self) -> None:
        """The connection is gone: fail every pending call, refuse new ones."""
        with self.pending_lock:
            self.lost = True
            pending, self.pending = self.pending, {}
        error = ConnectionLost(f"connection to {self.label} lost")
        for call in pending.values():
            _fail(call, error)


def _fail(call: PendingCall, exc: BaseException) -> None:
    for waiter in call.waiters:
        waiter.set_exception(exc)


def wire_exception(args: Any) -> Exception:
    """The exception an error reply carries (ZEO 5 by name, ZEO 4 by class)."""
    try:
        name, payload = args
    except (TypeError, ValueError):
        return ProtocolError(f"malformed error reply {args!r}")
    if isinstance(name, type) and issubclass(name, Exception):  # ZEO 4 style
        return payload if isinstance(payload, Exception) else name(payload)
    return exception_from_wire(name, payload)
