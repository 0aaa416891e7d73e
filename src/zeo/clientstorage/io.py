"""The client's I/O thread: one asyncio loop, the connection and reconnects.

Application threads talk to it in two ways only:

* :meth:`ClientIO.call` / :meth:`ClientIO.send` encode the message on the
  calling thread, append it to an outbox and, if no flush is scheduled yet,
  wake the loop once (``call_soon_threadsafe``).  Messages sent by several
  threads in a burst share one wake-up and one ``write``.  The caller then
  blocks on a :class:`~.connection.Waiter`.
* Everything the server sends (replies, invalidations, blob chunks) is
  processed on the loop in wire order; cache updates happen there, never in
  the application thread after the fact.

The loop keeps one operational connection.  When it is lost, it retries all
addresses in parallel, first at once, then with a growing, jittered delay
from ``disconnect_poll`` up to ``max_disconnect_poll``.  A connection is
operational only after cache verification (:mod:`.verify`).  With
``read_only_fallback`` a read-only connection is used while the loop keeps
polling for a writable server and switches to it when one appears.
"""

import asyncio
import logging
import random
import threading
import time

from ZODB.POSException import ReadOnlyError

from ..eventloop import new_event_loop
from ..exceptions import CacheError, ClientDisconnected
from .connection import ClientProtocol, ConnectionLost, Waiter
from .verify import verify_connection

logger = logging.getLogger(__name__)

# How long one attempt to connect, handshake and register may take.
CONNECT_TIMEOUT = 10.0


def normalize_addresses(address):
    """Turn the ``addr`` argument into a list of (host, port) or socket paths."""
    if isinstance(address, (list,)) or (
        isinstance(address, tuple) and address and isinstance(address[0], tuple)
    ):
        items = list(address)
    else:
        items = [address]
    result = []
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool):
            result.append(("127.0.0.1", item))
        elif isinstance(item, str):
            result.append(item)
        elif isinstance(item, bytes):
            result.append(item.decode())
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            result.append((str(item[0]), int(item[1])))
        else:
            raise ValueError(
                f"bad server address {item!r}: use (host, port), a port number "
                f"or a Unix socket path"
            )
    if not result:
        raise ValueError("no server address given")
    return result


class ClientIO:
    """Connection manager running in its own thread (see module docstring)."""

    def __init__(
        self,
        client,
        addresses,
        storage_name="1",
        read_only=False,
        read_only_fallback=False,
        disconnect_poll=1.0,
        max_disconnect_poll=10.0,
        ssl=None,
        ssl_server_hostname=None,
        client_label=None,
        wait_timeout=30.0,
    ):
        self.client = client
        self.addresses = normalize_addresses(addresses)
        self.storage_name = storage_name
        self.read_only = read_only
        self.read_only_fallback = read_only_fallback
        self.disconnect_poll = disconnect_poll
        self.max_disconnect_poll = max(max_disconnect_poll, disconnect_poll)
        self.ssl = ssl
        self.ssl_server_hostname = ssl_server_hostname
        self.client_label = client_label
        self.wait_timeout = wait_timeout
        self.protocol = None  # the operational connection, or None
        self.generation = 0  # incremented on every new operational connection
        self.connected = threading.Event()
        self.closing = False
        self.last_error = None  # why the last connection attempt was refused
        self._outbox = []
        self._outbox_lock = threading.Lock()
        self._flush_scheduled = False
        self._connector = None
        # Application threads write straight to the socket and read their
        # own replies (see direct.py); both off: everything goes via the loop.
        self.direct_writes = True
        self.direct_reads = True
        self.loop = new_event_loop()
        self.thread = threading.Thread(
            target=self._run, name=f"zeo client I/O {self.addresses[0]}", daemon=True
        )

    # -- thread -----------------------------------------------------------------

    def start(self):
        self.thread.start()
        self.loop.call_soon_threadsafe(self._start_connector)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def _start_connector(self):
        self._connector = self.loop.create_task(self._connect_forever())

    def close(self, timeout=10.0):
        """Close the connection and stop the I/O thread."""
        if self.closing:
            return
        self.closing = True
        self.connected.set()  # wake callers so they see ``closing``
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(
                lambda: self.loop.create_task(self._shutdown())
            )
            self.thread.join(timeout)

    async def _shutdown(self):
        if self._connector is not None:
            self._connector.cancel()
        protocol = self.protocol
        if protocol is not None:
            protocol.close()
            try:
                await asyncio.wait_for(asyncio.shield(protocol.closed), 2.0)
            except (TimeoutError, asyncio.CancelledError):
                pass
        # Let cancelled connection attempts finish before the loop stops, so
        # that none is destroyed pending ("Task was destroyed...").
        current = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not current]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2.0)
        self.loop.stop()

    # -- application-thread side ---------------------------------------------

    def is_connected(self):
        return self.protocol is not None

    def wait_connected(self, timeout=None):
        """The operational connection, waiting up to *timeout* (``wait_timeout``)."""
        protocol = self.protocol
        if protocol is not None:
            return protocol
        if timeout is None:
            timeout = self.wait_timeout
        deadline = time.monotonic() + timeout
        while True:
            if self.closing:
                raise ClientDisconnected("the client storage is closed")
            protocol = self.protocol
            if protocol is not None:
                return protocol
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.connected.wait(remaining):
                if self.protocol is not None:
                    return self.protocol
                reason = f" ({self.last_error})" if self.last_error else ""
                raise ClientDisconnected(
                    f"not connected to a server at {self._address_text()} "
                    f"after waiting {timeout:.3g} s{reason}"
                )

    def _address_text(self):
        return ", ".join(
            a if isinstance(a, str) else f"{a[0]}:{a[1]}" for a in self.addresses
        )

    def call(
        self,
        name,
        *args,
        msgid=None,
        hook=None,
        anywhere=False,
        retry=False,
        protocol=None,
    ):
        """Call *name* on the server and return its reply (or raise its error).

        *hook* runs on the reply before it is returned; *anywhere*: it may
        run on any thread that reads the reply (see :mod:`.direct`).
        *retry*: the call is idempotent and is sent again on the next
        connection if this one is lost (within ``wait_timeout``).
        *protocol*: the call belongs to that connection (a transaction); if it
        is no longer the operational one, :class:`ClientDisconnected`.
        """
        deadline = time.monotonic() + self.wait_timeout
        while True:
            if protocol is None:
                current = self.wait_connected(max(deadline - time.monotonic(), 0))
            else:
                current = self._still_current(protocol, name)
            waiter = Waiter()
            session = current.session
            call_id = msgid if msgid is not None else next(session.msgids)
            data = session.call(call_id, name, args)
            try:
                direct = current.direct
                if direct is not None:
                    direct.call(call_id, name, data, waiter, hook, anywhere)
                else:
                    self._submit((current, call_id, name, data, waiter, hook, anywhere))
                return waiter.wait()
            except ConnectionLost:
                if not retry or protocol is not None:
                    raise
                if time.monotonic() > deadline:
                    raise
                logger.info("retrying %s after the connection was lost", name)

    def send(self, name, *args, protocol=None):
        """Send the one-way message *name* (no reply)."""
        if protocol is None:
            protocol = self.wait_connected()
        else:
            self._still_current(protocol, name)
        self._write(protocol, None, name, protocol.session.one_way(name, args))

    def send_call_nowait(self, name, *args, msgid, hook, anywhere=False):
        """Send a call whose reply only feeds *hook* (prefetch)."""
        protocol = self.protocol
        if protocol is None:
            return
        data = protocol.session.call(msgid, name, args)
        try:
            self._write(protocol, msgid, name, data, None, hook, anywhere)
        except ConnectionLost:
            pass  # prefetching is only a hint

    def _still_current(self, protocol, name):
        """*protocol*, if a transaction begun on it may go on; else raise."""
        if protocol is not self.protocol:
            raise ClientDisconnected(
                f"{name}: the connection this transaction began on was lost"
            )
        return protocol

    def _write(
        self, protocol, msgid, name, data, waiter=None, hook=None, anywhere=False
    ):
        """Write *data* from this thread, or hand it to the loop (see module doc).

        A call (*msgid* not None) is registered first; an identical call
        already pending is joined and nothing is written.
        """
        direct = protocol.direct
        if direct is not None:
            if msgid is None or protocol.session.register(
                msgid, name, waiter, hook, anywhere
            ):
                direct.write(data)
        else:
            self._submit((protocol, msgid, name, data, waiter, hook, anywhere))

    def _submit(self, item):
        with self._outbox_lock:
            self._outbox.append(item)
            if self._flush_scheduled:
                return
            self._flush_scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._flush)
        except RuntimeError:  # loop closed
            raise ClientDisconnected("the client storage is closed")

    # -- loop side ----------------------------------------------------------------

    def _flush(self):
        with self._outbox_lock:
            items, self._outbox = self._outbox, []
            self._flush_scheduled = False
        writes = {}
        for protocol, msgid, name, data, waiter, hook, anywhere in items:
            transport = protocol.transport
            if transport is None or transport.is_closing() or protocol.closed.done():
                if waiter is not None:
                    waiter.set_exception(
                        ConnectionLost(f"{name}: connection to {protocol.address} lost")
                    )
                continue
            try:
                if msgid is not None and not protocol.session.register(
                    msgid, name, waiter, hook, anywhere
                ):
                    continue  # an identical load is already on its way
            except ConnectionLost as exc:
                if waiter is not None:
                    waiter.set_exception(exc)
                continue
            writes.setdefault(protocol, []).append(data)
        for protocol, chunks in writes.items():
            protocol.transport.write(
                chunks[0] if len(chunks) == 1 else b"".join(chunks)
            )

    def callback(self, protocol, name, args):
        """A server callback arrived on *protocol* (I/O thread, wire order)."""
        handler = self.client.callbacks.get(name)
        if handler is None:
            logger.warning("unknown server callback %r ignored", name)
            return
        handler(*args)

    def connection_lost(self, protocol, exc):
        if protocol is self.protocol:
            self.protocol = None
            self.connected.clear()
            if not self.closing:
                logger.warning(
                    "disconnected from %s%s",
                    protocol.address,
                    f": {exc}" if exc else "",
                )
            self.client.notify_disconnected()

    async def _connect_forever(self):
        delay = self.disconnect_poll
        while not self.closing:
            protocol = await self._connect_once()
            if protocol is None or not await self._activate(protocol):
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self.max_disconnect_poll)
                continue
            delay = self.disconnect_poll
            while not self.closing:
                if not (protocol.read_only and not self.read_only):
                    await asyncio.shield(protocol.closed)
                    break
                # Read-only fallback: keep looking for a writable server.
                try:
                    await asyncio.wait_for(
                        asyncio.shield(protocol.closed), self.disconnect_poll
                    )
                    break
                except TimeoutError:
                    pass
                better = await self._connect_once(writable_only=True)
                if better is None:
                    continue
                logger.info("writable server found at %s; switching", better.address)
                protocol.close()
                await asyncio.shield(protocol.closed)
                if not await self._activate(better):
                    break
                protocol = better

    async def _connect_once(self, writable_only=False):
        """Try every address in parallel; return a registered connection."""
        tasks = [
            self.loop.create_task(self._open(address, writable_only))
            for address in self.addresses
        ]
        chosen = fallback = None
        try:
            for next_done in asyncio.as_completed(tasks):
                try:
                    protocol = await next_done
                except (OSError, TimeoutError, ClientDisconnected) as exc:
                    self.last_error = exc
                    continue
                except ReadOnlyError:
                    self.last_error = "the server is read-only"
                    continue
                except Exception as exc:
                    self.last_error = exc
                    logger.warning("connecting failed: %r", exc)
                    continue
                if not protocol.read_only or self.read_only:
                    chosen = protocol
                    break
                if fallback is None:
                    fallback = protocol
                else:
                    protocol.close()
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()
                elif not task.cancelled() and task.exception() is None:
                    other = task.result()
                    if other is not chosen and other is not fallback:
                        other.close()
        if chosen is None:
            return fallback
        if fallback is not None:
            fallback.close()
        return chosen

    async def _open(self, address, writable_only):
        def factory():
            return ClientProtocol(self, address, self.loop)

        server_hostname = self.ssl_server_hostname if self.ssl else None
        if isinstance(address, str):
            opening = self.loop.create_unix_connection(
                factory, address, ssl=self.ssl, server_hostname=server_hostname
            )
        else:
            opening = self.loop.create_connection(
                factory,
                address[0],
                address[1],
                ssl=self.ssl,
                server_hostname=server_hostname or (address[0] if self.ssl else None),
            )
        _, protocol = await asyncio.wait_for(opening, CONNECT_TIMEOUT)
        try:
            announced = await asyncio.wait_for(protocol.announced, CONNECT_TIMEOUT)
            protocol.start_session(announced)
            read_only = self.read_only
            try:
                server_tid = await asyncio.wait_for(
                    protocol.request("register", self.storage_name, read_only),
                    CONNECT_TIMEOUT,
                )
            except ReadOnlyError:
                if not self.read_only_fallback or writable_only:
                    raise
                read_only = True
                server_tid = await asyncio.wait_for(
                    protocol.request("register", self.storage_name, True),
                    CONNECT_TIMEOUT,
                )
        except BaseException:
            protocol.close()
            raise
        protocol.read_only = read_only
        protocol.server_tid = server_tid
        return protocol

    async def _activate(self, protocol):
        """Verify the cache over *protocol* and make it the operational one."""
        try:
            await verify_connection(self.client, protocol)
        except CacheError as exc:
            logger.critical("%s", exc)
            self.last_error = exc
            protocol.close()
            return False
        except (ClientDisconnected, OSError, TimeoutError) as exc:
            self.last_error = exc
            protocol.close()
            return False
        if protocol.closed.done():
            return False
        self.last_error = None
        if self.client_label:
            protocol.send_oneway("set_client_label", self.client_label)
        if self.direct_writes:
            protocol.enable_direct(reads=self.direct_reads)
        self.generation += 1
        self.protocol = protocol
        self.connected.set()
        logger.info(
            "connected to %s (%s%s)",
            protocol.address,
            protocol.protocol_version.decode(),
            ", read-only" if protocol.read_only else "",
        )
        return True
