"""One client connection to a ZEO server: an asyncio protocol on the I/O loop.

It moves bytes only: frames come in, are decoded and either complete a
pending call or are handed to the owner (:class:`~.io.ClientIO`) as server
callbacks, strictly in wire order; application threads wait on a
:class:`Waiter`.

Writes: during the handshake and verification the loop writes through the
asyncio transport.  Once the connection is operational (and not TLS), an
application thread writes its encoded frame straight to a duplicate of the
socket under ``send_lock`` (:meth:`ClientProtocol.write_direct`), so a
round trip wakes the I/O thread once (for the reply) instead of twice.  A
full socket buffer blocks only the writing thread; the loop keeps reading.
Calls are registered in ``pending`` (under ``pending_lock``) before their
frame is written, so a fast reply always finds its waiter.
"""

import asyncio
import itertools
import logging
import os
import select
import socket
import threading

from ..exceptions import ClientDisconnected, ProtocolError
from ..protocol import PROTOCOL_VERSION, FrameDecoder, client_decoder, encoder, frame
from ..protocol.marshal import exception_from_wire

logger = logging.getLogger(__name__)

# The server ignores messages with msgid -1; ZEO sends one every 60 seconds
# so that idle connections through firewalls and NATs stay open.
HEARTBEAT_INTERVAL = 60.0


class ConnectionLost(ClientDisconnected):
    """The connection closed while a call was waiting for its reply.

    Idempotent calls (loads, pings, ...) are retried on the next connection;
    others surface as :class:`ClientDisconnected`.
    """


class Waiter:
    """A reply slot an application thread blocks on; filled by the I/O thread.

    A pre-acquired ``threading.Lock`` is the cheapest cross-thread wake-up
    CPython offers (``concurrent.futures.Future`` uses a Condition and costs
    several times more per call).
    """

    __slots__ = ("_lock", "result", "exception", "done")

    def __init__(self):
        self._lock = threading.Lock()
        self._lock.acquire()
        self.exception = None
        self.result = None
        self.done = False

    def set_result(self, result):
        if not self.done:
            self.done = True
            self.result = result
            self._lock.release()

    def set_exception(self, exception):
        if not self.done:
            self.done = True
            self.exception = exception
            self._lock.release()

    def wait(self, timeout=None):
        if not self._lock.acquire(timeout=-1 if timeout is None else timeout):
            raise ClientDisconnected("timed out waiting for the server's reply")
        if self.exception is not None:
            raise self.exception
        return self.result


class PendingCall:
    """A call sent and not yet answered: who waits, and what to run first.

    *hook*, if set, runs on the I/O thread with the result before any waiter
    wakes up; it is how load replies enter the cache and commits update it in
    wire order with invalidations.
    """

    __slots__ = ("waiters", "hook", "name")

    def __init__(self, name, hook):
        self.name = name
        self.hook = hook
        self.waiters = []


class ClientProtocol(asyncio.Protocol):
    """The ZEO 5 client side of one connection (PROTOCOL.md sections 2-5)."""

    def __init__(self, owner, address, loop):
        self.owner = owner
        self.address = address
        self.loop = loop
        self.transport = None
        self.frames = FrameDecoder()
        self.protocol_version = None
        self.encode = None
        self.decode = None
        self.announced = loop.create_future()
        self.closed = loop.create_future()
        self.pending = {}
        self.pending_lock = threading.Lock()
        self.lost = False
        self.sock = None  # duplicate socket for direct writes, once enabled
        self.send_lock = threading.Lock()
        self.msgids = itertools.count(1)
        self.operational = False
        self.queued_callbacks = []  # callbacks seen before verification ended
        self.read_only = False
        self.server_tid = None
        self._heartbeat = None

    # -- asyncio callbacks -------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        try:
            payloads = self.frames.feed(data)
        except ProtocolError as exc:
            self._abort(exc)
            return
        for payload in payloads:
            if self.encode is None:
                if not self.announced.done():
                    self.announced.set_result(payload)
                continue
            try:
                message = self.decode(payload)
            except ProtocolError as exc:
                self._abort(exc)
                return
            self.message_received(message)

    def connection_lost(self, exc):
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        if not self.announced.done():
            self.announced.set_exception(
                ConnectionLost(f"connection to {self.address} closed")
            )
        with self.pending_lock:
            self.lost = True
            pending, self.pending = self.pending, {}
        if self.sock is not None and self.send_lock.acquire(blocking=False):
            try:
                self._close_direct_socket()
            finally:
                self.send_lock.release()
        error = ConnectionLost(f"connection to {self.address} lost")
        for call in pending.values():
            for waiter in call.waiters:
                if isinstance(waiter, Waiter):
                    waiter.set_exception(error)
                elif not waiter.done():
                    waiter.set_exception(error)
        if not self.closed.done():
            self.closed.set_result(exc)
        self.owner.connection_lost(self, exc)

    # -- session -------------------------------------------------------------

    def start_session(self, announced):
        """Answer the server's protocol announcement and switch to RPC."""
        kind, version = announced[:1], announced[1:]
        if kind not in (b"M", b"Z") or not version:
            raise ProtocolError(f"server announced an unknown protocol {announced!r}")
        if version < PROTOCOL_VERSION:
            raise ProtocolError(
                f"server speaks ZEO protocol {announced!r}; this client needs "
                f"ZEO 5 (Z5 or M5) servers"
            )
        self.protocol_version = kind + PROTOCOL_VERSION
        self.transport.write(frame(self.protocol_version))
        self.encode = encoder(self.protocol_version)
        self.decode = client_decoder(self.protocol_version)
        self._heartbeat = self.loop.call_later(HEARTBEAT_INTERVAL, self._beat)

    def _beat(self):
        if self.transport is None or self.transport.is_closing():
            return
        data = frame(self.encode(-1, 0, ".reply", None))
        if self.sock is not None:
            # Direct writes may block: never on the loop thread.
            future = self.loop.run_in_executor(None, self.write_direct, data)
            future.add_done_callback(_ignore_result)
        else:
            self.transport.write(data)
        self._heartbeat = self.loop.call_later(HEARTBEAT_INTERVAL, self._beat)

    def enable_direct_writes(self):
        """Let application threads write to the socket (see module doc)."""
        transport = self.transport
        if transport.get_extra_info("sslcontext") is not None:
            return  # TLS state lives in the transport
        if transport.get_write_buffer_size():
            return  # frames still queued there: ordering would break
        raw = transport.get_extra_info("socket")
        if raw is None:
            return
        self.sock = socket.socket(fileno=os.dup(raw.fileno()))

    def write_direct(self, data):
        """Write one or more whole frames from any thread (blocking)."""
        with self.send_lock:
            sock = self.sock
            if sock is None or self.lost:
                self._close_direct_socket()
                raise ConnectionLost(f"connection to {self.address} lost")
            view = memoryview(data)
            try:
                while view:
                    try:
                        sent = sock.send(view)
                    except BlockingIOError:
                        select.select([], [sock], [], 1.0)
                        if self.lost:
                            raise ConnectionLost(f"connection to {self.address} lost")
                        continue
                    view = view[sent:]
            except OSError as exc:
                self._close_direct_socket()
                raise ConnectionLost(f"connection to {self.address} lost: {exc}")

    def _close_direct_socket(self):
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()

    def _abort(self, exc):
        logger.error("closing connection to %s: %s", self.address, exc)
        if self.transport is not None:
            self.transport.abort()

    def close(self):
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    # -- messages --------------------------------------------------------------

    def message_received(self, message):
        msgid, flag, name, args = message
        if name == ".reply":
            with self.pending_lock:
                call = self.pending.pop(msgid, None)
            if call is None:
                if msgid != 0:
                    logger.warning(
                        "reply to unknown call %r from %s", msgid, self.address
                    )
                return
            if flag == 2:
                self._fail(call, _wire_exception(args))
                return
            if call.hook is not None:
                try:
                    args = call.hook(args)
                except Exception as exc:
                    logger.exception("processing the reply to %s failed", call.name)
                    self._fail(call, exc)
                    return
            for waiter in call.waiters:
                if isinstance(waiter, Waiter):
                    waiter.set_result(args)
                elif not waiter.done():
                    waiter.set_result(args)
            return
        if not isinstance(args, (tuple, list)):
            logger.error("callback %s from %s with bad arguments", name, self.address)
            return
        if not self.operational and name == "invalidateTransaction":
            self.queued_callbacks.append((name, args))
            return
        try:
            self.owner.callback(self, name, args)
        except Exception:
            logger.exception("server callback %s%r failed", name, tuple(args)[:2])

    def _fail(self, call, exc):
        for waiter in call.waiters:
            if isinstance(waiter, Waiter):
                waiter.set_exception(exc)
            elif not waiter.done():
                waiter.set_exception(exc)

    # -- sending (I/O thread only) ---------------------------------------------

    def register_call(self, msgid, name, waiter, hook):
        """Note an outgoing call; return False if an identical one is pending.

        Raises :class:`ConnectionLost` if the connection is already gone.
        """
        with self.pending_lock:
            if self.lost:
                raise ConnectionLost(f"{name}: connection to {self.address} lost")
            call = self.pending.get(msgid)
            if call is not None:
                if waiter is not None:
                    call.waiters.append(waiter)
                return False
            call = self.pending[msgid] = PendingCall(name, hook)
            if waiter is not None:
                call.waiters.append(waiter)
            return True

    def request(self, name, *args):
        """Call *name* from the I/O loop itself; returns an asyncio future."""
        msgid = next(self.msgids)
        future = self.loop.create_future()
        self.register_call(msgid, name, future, None)
        self.transport.write(frame(self.encode(msgid, False, name, args)))
        return future

    def send_oneway(self, name, *args):
        self.transport.write(frame(self.encode(0, True, name, args)))


def _ignore_result(future):
    if not future.cancelled():
        future.exception()  # a lost connection is handled by connection_lost


def _wire_exception(args):
    try:
        name, payload = args
    except (TypeError, ValueError):
        return ProtocolError(f"malformed error reply {args!r}")
    if isinstance(name, type) and issubclass(name, Exception):  # ZEO 4 style
        return payload if isinstance(payload, Exception) else name(payload)
    return exception_from_wire(name, payload)
