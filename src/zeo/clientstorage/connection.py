"""One client connection to a ZEO server: an asyncio protocol on the I/O loop.

It moves bytes only.  What they mean is the business of its pure
:class:`~zeo.protocol.client.ClientSession` (``protocol.session``): the
handshake, msgids, the table of pending calls, replies, errors and which
server callbacks are held back.  Bytes read are fed to the session; the
callbacks it yields go to the owner (:class:`~.io.ClientIO`) strictly in
wire order; application threads wait on a :class:`Waiter`.

During the handshake and verification the loop reads and writes through
the asyncio transport.  Once the connection is operational (and not TLS),
application threads write their frames straight to a duplicate of the
socket and read their own replies (:mod:`.direct`): a round trip then
wakes no other thread.  Calls are registered with the session before
their frame is written, so a fast reply always finds its waiter.
"""

import asyncio
import logging
import threading

from ..exceptions import ClientDisconnected
from ..protocol.client import (
    Announced,
    Broken,
    Callback,
    ClientSession,
    ConnectionLost,
    PendingCall,
    wire_exception,
)
from .direct import DirectChannel

__all__ = [
    "ClientProtocol",
    "ConnectionLost",
    "PendingCall",
    "Waiter",
    "wire_exception",
]

logger = logging.getLogger(__name__)

# The server ignores messages with msgid -1; ZEO sends one every 60 seconds
# so that idle connections through firewalls and NATs stay open.
HEARTBEAT_INTERVAL = 60.0


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


class _FutureWaiter:
    """An asyncio future as a waiter: only the first outcome counts."""

    __slots__ = ("future",)

    def __init__(self, future):
        self.future = future

    def set_result(self, result):
        if not self.future.done():
            self.future.set_result(result)

    def set_exception(self, exception):
        if not self.future.done():
            self.future.set_exception(exception)


class ClientProtocol(asyncio.Protocol):
    """The ZEO 5 client side of one connection (PROTOCOL.md sections 2-5)."""

    def __init__(self, owner, address, loop):
        self.owner = owner
        self.address = address
        self.loop = loop
        self.transport = None
        self.session = ClientSession(address)
        self.announced = loop.create_future()
        self.closed = loop.create_future()
        self.direct: DirectChannel | None = None  # once operational (see .direct)
        self.read_only = False
        self.server_tid = None
        self._heartbeat = None

    @property
    def protocol_version(self):
        return self.session.protocol_version

    @property
    def lost(self):
        return self.session.lost

    # -- asyncio callbacks -------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.handle_all(self.session.receive(data))

    def handle_all(self, events):
        """Act on each of *events* in order (I/O thread); stop at a Broken one."""
        for event in events:
            if not self.handle(event):
                return

    def handle(self, event):
        """Act on one event from the session (I/O thread); False if broken."""
        kind = type(event)
        if kind is Callback:
            try:
                self.owner.callback(self, event.name, event.args)
            except Exception:
                logger.exception(
                    "server callback %s%r failed", event.name, event.args[:2]
                )
        elif kind is Broken:
            self._abort(event.error)
            return False
        elif kind is Announced:
            if not self.announced.done():
                self.announced.set_result(event.protocol)
        # A Pause needs nothing: resuming the events completes its reply.
        return True

    def connection_lost(self, exc):
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        if not self.announced.done():
            self.announced.set_exception(
                ConnectionLost(f"connection to {self.address} closed")
            )
        self.session.lose()
        if self.direct is not None:
            self.direct.close(self.loop)
        if not self.closed.done():
            self.closed.set_result(exc)
        self.owner.connection_lost(self, exc)

    # -- session -------------------------------------------------------------

    def start_session(self, announced):
        """Answer the server's protocol announcement and switch to RPC."""
        self.transport.write(self.session.answer(announced))
        self._heartbeat = self.loop.call_later(HEARTBEAT_INTERVAL, self._beat)

    def _beat(self):
        if self.transport is None or self.transport.is_closing():
            return
        data = self.session.heartbeat()
        if self.direct is not None:
            # Direct writes may block: never on the loop thread.
            future = self.loop.run_in_executor(None, self.direct.write, data)
            future.add_done_callback(_ignore_result)
        else:
            self.transport.write(data)
        self._heartbeat = self.loop.call_later(HEARTBEAT_INTERVAL, self._beat)

    def enable_direct(self, reads=True):
        """Let application threads write (and, with *reads*, read) the socket
        themselves (see :mod:`.direct`); I/O thread, once operational."""
        transport = self.transport
        if transport.get_extra_info("sslcontext") is not None:
            return  # TLS state lives in the transport
        if transport.get_write_buffer_size():
            return  # frames still queued there: ordering would break
        raw = transport.get_extra_info("socket")
        if raw is None:
            return
        direct = DirectChannel(self, raw, reads)
        if direct.reads:
            direct.start_reading(self.loop, transport)
        self.direct = direct

    def abort_threadsafe(self):
        """Drop the connection from any thread (its stream is unusable)."""
        try:
            self.loop.call_soon_threadsafe(self._abort, None)
        except RuntimeError:
            pass  # the loop is closed: so is the connection

    def _abort(self, exc):
        if exc is not None:
            logger.error("closing connection to %s: %s", self.address, exc)
        if self.transport is not None:
            self.transport.abort()

    def close(self):
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    # -- sending from the I/O loop itself ------------------------------------

    def request(self, name, *args):
        """Call *name* from the I/O loop; returns an asyncio future."""
        session = self.session
        msgid = next(session.msgids)
        future = self.loop.create_future()
        session.register(msgid, name, _FutureWaiter(future), None)
        self.transport.write(session.call(msgid, name, args))
        return future

    def send_oneway(self, name, *args):
        self.transport.write(self.session.one_way(name, args))


def _ignore_result(future):
    if not future.cancelled():
        future.exception()  # a lost connection is handled by connection_lost
