"""The asyncio adapter: sockets in, sessions out.

One event loop serves every client (as ZEO 5/6 does, PROTOCOL.md 13);
storage calls run inline on it, only ``pack``/``undoLog``/``undoInfo`` go
to a small thread pool.  :class:`ServerConnection` only moves bytes: what
a client may say and what it means is decided by its pure
:class:`~zeo.protocol.server.ServerSession`, whose events it acts on by
calling its :class:`~.zeostorage.ZEOStorage` and writing what the session
encodes; replies produced while one read is processed are written with a
single ``write`` call.
:class:`ServerRunner` owns the loop, the listening socket (TCP or Unix,
optionally TLS) and the shutdown.  uvloop is used when it is installed.
"""

import asyncio
import concurrent.futures
import itertools
import json
import logging
import os
import threading

from ZODB.POSException import POSError

from ..eventloop import new_event_loop
from ..protocol.server import Close, Connected, Refused, ServerSession
from .transaction import DELAYED

logger = logging.getLogger(__name__)

# A client that stops reading still gets every invalidation broadcast; past
# this many unsent bytes it is disconnected instead of growing the server's
# memory without bound (it reconnects and verifies its cache like after any
# other disconnect).  64 MiB is thousands of large invalidation messages.
MAX_UNSENT_OUTPUT = 64 << 20
_unix_connection_numbers = itertools.count(1)


class ServerConnection(asyncio.Protocol):
    """One client connection (see the module docstring)."""

    def __init__(self, server, runner):
        self.server = server
        self.runner = runner
        self.transport = None
        self.session = None
        self.label = "unconnected"
        self.wire = ServerSession(server.protocol, server.encode)
        self._methods = {}
        self._batch = None  # replies collected while processing one read
        self._closing = False
        self._paused = False
        self._streams = []  # [(message iterator, msgid to answer at the end)]

    # -- asyncio callbacks ------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.label = f"{peer[0]}:{peer[1]}"
        else:
            self.label = f"unix#{next(_unix_connection_numbers)}"
        self.runner.connections.add(self)
        transport.write(self.wire.greeting())

    def data_received(self, data):
        self._batch = batch = []
        try:
            for event in self.wire.receive(data):
                if self._closing:
                    break
                if type(event) is not tuple:  # not a call (see protocol.server.Call)
                    self._act(event)
                    continue
                msgid, one_way, name, args = event
                self.session.msgid = msgid
                try:
                    result = self._methods[name](*args)
                except Exception as exc:
                    self._failed(event, exc)
                    continue
                if not one_way and result is not DELAYED:
                    self.send_reply(msgid, result)
        finally:
            self._batch = None
            if batch and not self._closing:
                self.transport.write(b"".join(batch))

    def _failed(self, call, exc):
        outcome = self.wire.failed(call, exc)
        if type(outcome) is Close:
            self.close(outcome.reason)
        else:
            self._log_error(exc)
            self._send(outcome)

    def _act(self, event):
        """Act on what the session said that is not a call."""
        if type(event) is Close:
            self.close(event.reason)
        elif type(event) is Refused:
            self._log_error(event.error)
            self._send(event.reply)
        elif type(event) is Connected:
            self.session = self.server.create_session(self)
            self._methods = self.session.methods()
            self.wire.allow(self._methods, registered=False)
            logger.info("(%s) connected (%s)", self.label, event.protocol.decode())
        else:  # StatusRequested
            # Health probes come every few seconds: keep them out of INFO logs.
            logger.debug("(%s) ruok status request", self.label)
            status = json.dumps(self.server.ruok(), default=str).encode("ascii")
            self._send(self.wire.status(status))
            self.close(None)

    def connection_lost(self, exc):
        self._closing = True
        self.runner.connections.discard(self)
        self._end_session()

    def _end_session(self):
        """Abort the session's transaction, free its lock, unregister it."""
        self._streams = []
        session = self.session
        if session is not None:
            self.session = None
            try:
                session.disconnected()
            except Exception:
                logger.exception("(%s) cleaning up after disconnect failed", self.label)
            logger.info("(%s) disconnected", self.label)

    def pause_writing(self):
        # The client does not keep up with its replies: stop reading its
        # requests until it does, so it cannot make us buffer without end.
        self._paused = True
        if not self._closing:
            self.transport.pause_reading()

    def resume_writing(self):
        self._paused = False
        if not self._closing:
            self.transport.resume_reading()
        if self._streams:
            self._pump()

    # -- outgoing messages ---------------------------------------------------------

    def _send(self, data):
        batch = self._batch
        if batch is not None:
            batch.append(data)
        elif not self._closing:
            self.transport.write(data)

    def send_frame(self, data):
        """Send an already framed message (a broadcast encoded once)."""
        transport = self.transport
        if (
            transport is not None
            and not self._closing
            and transport.get_write_buffer_size() > MAX_UNSENT_OUTPUT
        ):
            self.close(
                f"client does not read its messages ({MAX_UNSENT_OUTPUT} bytes unsent)"
            )
            return
        self._send(data)

    def send_reply(self, msgid, value):
        try:
            data = self.wire.reply(msgid, value)
        except Exception as exc:
            logger.error("(%s) cannot encode the reply %r: %s", self.label, value, exc)
            self.send_error(msgid, TypeError(f"cannot encode the result: {exc}"))
            return
        self._send(data)

    def send_error(self, msgid, exc):
        self._log_error(exc)
        self._send(self.wire.error(msgid, exc))

    def _log_error(self, exc):
        if isinstance(exc, POSError):
            logger.debug("(%s) error reply %r", self.label, exc)
        else:
            logger.warning(
                "(%s) error reply %s: %s", self.label, type(exc).__name__, exc
            )

    def call_async(self, name, args):
        self._send(self.wire.callback(name, args))

    def stream(self, messages, msgid):
        """Send one-way ``(name, args)`` *messages* as the socket takes them,
        then the reply None to *msgid* (sendBlob)."""
        self._streams.append((messages, msgid))
        if len(self._streams) == 1:
            self._pump()

    def _pump(self):
        batch = self._batch
        if batch:
            # Keep order with replies already produced in this read.
            self.transport.write(b"".join(batch))
            batch.clear()
        self._batch = None
        try:
            while self._streams and not self._paused and not self._closing:
                messages, msgid = self._streams[0]
                try:
                    name, args = next(messages)
                except StopIteration:
                    del self._streams[0]
                    self.send_reply(msgid, None)
                    continue
                except Exception as exc:
                    del self._streams[0]
                    self.send_error(msgid, exc)
                    continue
                self._send(self.wire.callback(name, args))
        finally:
            self._batch = batch

    def run_in_thread(self, msgid, function, *args):
        """Run a slow storage call in a thread; answer *msgid* with its result."""
        future = self.runner.loop.run_in_executor(self.runner.executor, function, *args)
        future.add_done_callback(lambda done: self._thread_done(msgid, done))

    def _thread_done(self, msgid, future):
        if future.cancelled():
            return
        exc = future.exception()
        if msgid is None:
            if exc is not None:
                logger.error("(%s) background call failed: %s", self.label, exc)
            return
        if self._closing:
            return
        if exc is not None:
            self.send_error(msgid, exc)
        else:
            self.send_reply(msgid, future.result())

    def registered(self):
        """The session registered: it may now call every method."""
        self._methods = self.session.methods()
        self.wire.allow(self._methods, registered=True)

    def close(self, reason, discard_output=False):
        """Close this connection; *reason* (if any) is logged as one line.

        The session ends at once (its transaction aborted, its commit lock
        freed) even if unsent output keeps the socket open a while longer;
        *discard_output* drops that output and closes the socket now.
        """
        if self._closing:
            return
        if reason:
            logger.error("(%s) closing the connection: %s", self.label, reason)
        batch = self._batch
        if batch and not discard_output:
            self.transport.write(b"".join(batch))
        if batch:
            batch.clear()
        self._closing = True
        if discard_output:
            self.transport.abort()
        else:
            self.transport.close()
        self._end_session()


class ServerRunner:
    """Run a :class:`~.server.StorageServer` on *address* until stopped.

    *address* is ``(host, port)`` or a Unix socket path.  :meth:`run` blocks
    (call it in the thread that should own the loop); :meth:`stop` may be
    called from any thread.
    """

    def __init__(self, server, address, ssl_context=None):
        self.server = server
        # ZConfig's socket-binding-address gives an object; keep its value.
        self.address = getattr(address, "address", address)
        self.ssl_context = ssl_context
        self.connections = set()
        self.loop = None
        self.listener = None
        self.bound_address = None
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="zeo-slow-call"
        )
        self.exit_code = 0
        self.started = threading.Event()
        self._stopped = None

    def run(self, on_started=None):
        """Serve until :meth:`stop`; return the exit code given to it."""
        self.loop = loop = new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(on_started))
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                loop.close()
                self.executor.shutdown(wait=True)
        return self.exit_code

    async def _serve(self, on_started):
        loop = self.loop
        self._stopped = loop.create_future()
        self.server.attach(loop)

        def factory():
            return ServerConnection(self.server, self)

        try:
            if isinstance(self.address, str):
                self.listener = await loop.create_unix_server(
                    factory, self.address, ssl=self.ssl_context
                )
                self.bound_address = self.address
            else:
                host, port = self.address
                self.listener = await loop.create_server(
                    factory, host or None, port, ssl=self.ssl_context, backlog=128
                )
                self.bound_address = self.listener.sockets[0].getsockname()[:2]
            logger.info("listening on %s", _address_text(self.bound_address))
            self.started.set()
            if on_started is not None:
                on_started(self)
            await self._stopped
        finally:
            self.started.set()
            await self._shutdown()

    async def _shutdown(self):
        if self.listener is not None:
            self.listener.close()
        for connection in list(self.connections):
            connection.close(None)
        # Let connection_lost run (it aborts transactions, frees locks).
        for _ in range(100):
            if not self.connections:
                break
            await asyncio.sleep(0.01)
        # A pack still running must finish before its storage is closed.
        self.executor.shutdown(wait=True)
        if isinstance(self.address, str) and self.listener is not None:
            try:
                os.remove(self.address)
            except OSError:
                pass
        self.server.close()

    def stop(self, exit_code=0):
        """Stop serving (thread-safe); :meth:`run` returns *exit_code*."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return

        def _stop():
            self.exit_code = exit_code
            if self._stopped is not None and not self._stopped.done():
                self._stopped.set_result(None)

        try:
            loop.call_soon_threadsafe(_stop)
        except RuntimeError:  # the loop closed meanwhile
            pass


def _address_text(address):
    if isinstance(address, str):
        return address
    return f"{address[0]}:{address[1]}"
