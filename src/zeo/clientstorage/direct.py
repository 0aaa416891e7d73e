"""Application threads on the socket: direct writes, and reading their own reply.

Once a plain (non-TLS) connection is operational, :class:`DirectChannel`
holds a duplicate of its socket.  An application thread then makes a call
with no hop through the I/O thread at all:

* it writes its frame itself, under ``send_lock`` (a full socket buffer
  blocks only that thread; the server keeps reading);
* then, if no other thread is reading, it takes the *read role*
  (``read_lock``), parks the I/O thread's reader and waits in ``poll()``
  for the reply, which it reads and completes itself.  A round trip then
  costs one wake-up (the caller's) instead of two (the I/O thread's, then
  the caller's), which on a small machine is most of its time.

The I/O thread does not watch the socket directly: it watches a private
epoll instance (the *gate*) that holds the socket.  Parking is an
``epoll_ctl`` on the gate, which any thread may do, so the loop's own
bookkeeping is never touched from outside it.  The loop reads only when the
gate is open and it can take the read role; otherwise whoever holds it
reads.

What a reader may do on its own thread is limited, so that nothing changes
for the code the client calls back: it completes its own reply (whatever
the hook) and replies whose hook is safe anywhere (loads: the cache has its
lock).  Anything else (a server callback such as an invalidation, another
thread's commit reply, a protocol error, the end of the connection) stops
it: the rest of what it read is handed to the I/O thread, in order, with
the read role, and the caller waits for its reply like any other
(:meth:`~zeo.clientstorage.connection.Waiter.wait`).  Wire order is kept
because only the holder of the read role reads or decodes.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..protocol.client import ConnectionLost, Event

if TYPE_CHECKING:
    from .connection import ClientProtocol, Waiter

logger = logging.getLogger(__name__)

# Bytes read per recv(), as asyncio's own transports do.
READ_SIZE = 256 * 1024

# Whether this platform can park the loop's reader (Linux epoll).
CAN_READ = hasattr(select, "epoll")


class DirectChannel:
    """A duplicate of an operational connection's socket (see module doc).

    Made and closed on the I/O thread; :meth:`write` and :meth:`call` run on
    application threads.
    """

    def __init__(self, protocol: ClientProtocol, raw: Any, reads: bool) -> None:
        self.protocol = protocol
        self.sock = socket.socket(fileno=os.dup(raw.fileno()))
        self.sock.setblocking(False)
        self.send_lock = threading.Lock()
        self.read_lock = threading.Lock()
        self._use_lock = threading.Lock()
        self._users = 0
        self._closing = False
        self._holder: int | None = None  # the application thread reading
        self.reads = reads and CAN_READ
        self._gate: Any = None
        self._poll: Any = None
        if self.reads:
            self._gate = select.epoll()
            self._gate.register(self.sock.fileno(), select.EPOLLIN)
            self._poll = select.poll()
            self._poll.register(self.sock.fileno(), select.POLLIN)

    # -- set-up and tear-down (I/O thread) ------------------------------------

    def start_reading(self, loop: Any, transport: Any) -> None:
        """Take over reading from *transport*: the loop now reads via the gate."""
        transport.pause_reading()
        loop.add_reader(self._gate.fileno(), self._loop_readable)

    def close(self, loop: Any) -> None:
        """The connection is gone: wake every thread using the socket and
        close it once the last one has left."""
        if self._gate is not None:
            loop.remove_reader(self._gate.fileno())
        with self._use_lock:
            if self._closing:
                return
            self._closing = True
            users = self._users
        try:
            # Wakes a thread in poll() and tells the server, whatever fds
            # still share the socket.
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if not users:
            self._close_fds()

    def _enter(self) -> bool:
        with self._use_lock:
            if self._closing:
                return False
            self._users += 1
            return True

    def _leave(self) -> None:
        with self._use_lock:
            self._users -= 1
            last = self._closing and not self._users
        if last:
            self._close_fds()

    def _close_fds(self) -> None:
        self.sock.close()
        if self._gate is not None:
            self._gate.close()

    def _park(self) -> None:
        self._gate.modify(self.sock.fileno(), 0)

    def _unpark(self) -> None:
        self._gate.modify(self.sock.fileno(), select.EPOLLIN)

    # -- writing (any thread) ----------------------------------------------------

    def write(self, data: bytes, reading: bool = False) -> bool:
        """Write whole frames from any thread, blocking while the buffer is full.

        *reading*: the caller holds the read role; it gives it back before
        it blocks (the server may be waiting for us to read before it reads
        again).  Returns whether it still holds it.
        """
        protocol = self.protocol
        session = protocol.session
        if session.lost or not self._enter():
            raise ConnectionLost(f"connection to {protocol.address} lost")
        try:
            with self.send_lock:
                view = memoryview(data)
                sock = self.sock
                while view:
                    try:
                        sent = sock.send(view)
                    except BlockingIOError:
                        if reading:
                            self._give_back()
                            reading = False
                        select.select([], [sock], [], 1.0)
                        if session.lost:
                            raise ConnectionLost(
                                f"connection to {protocol.address} lost"
                            ) from None
                        continue
                    view = view[sent:]
        except OSError as exc:
            raise ConnectionLost(f"connection to {protocol.address} lost: {exc}")
        finally:
            self._leave()
        return reading

    def call(
        self,
        msgid: Any,
        name: str,
        data: bytes,
        waiter: Waiter,
        hook: Any,
        anywhere: bool,
    ) -> None:
        """Register and write a call, then read its reply if no one else is.

        The read role is taken before the write: on loopback the reply can
        come back before ``send()`` returns, and the loop must not be woken
        for it.  When this returns, *waiter* has its reply, or the loop (or
        another reader) will give it.
        """
        reading = self._take_role()
        try:
            if self.protocol.session.register(msgid, name, waiter, hook, anywhere):
                reading = self.write(data, reading)
            if not reading and not waiter.done:
                reading = self._take_role()
            if reading:
                self._read_until(waiter, msgid)
        finally:
            self._give_back()  # unless given back or handed over already

    # -- reading on the loop ---------------------------------------------------

    def _loop_readable(self) -> None:
        if not self.read_lock.acquire(blocking=False):
            return  # an application thread reads (it parks the gate)
        try:
            try:
                data = self.sock.recv(READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._lost(exc)
                return
            if not data:
                self._lost(None)
                return
            self.protocol.data_received(data)
        finally:
            self.read_lock.release()

    def _lost(self, exc: BaseException | None) -> None:
        """End of stream or a socket error, on the loop."""
        protocol = self.protocol
        if self._gate is not None and not self._closing:
            protocol.loop.remove_reader(self._gate.fileno())
        if exc is not None:
            logger.info("connection to %s lost: %s", protocol.address, exc)
        transport = protocol.transport
        if transport is not None and not transport.is_closing():
            transport.abort()

    def _resume(self, first: Event | None, events: Iterator[Event] | None) -> None:
        """Finish what a reader handed over (loop thread, read role held)."""
        protocol = self.protocol
        try:
            if first is not None and not protocol.handle(first):
                return
            if events is not None:
                protocol.handle_all(events)
        finally:
            if not self._closing:
                try:
                    self._unpark()
                except (OSError, ValueError):
                    pass  # closed meanwhile
            self.read_lock.release()

    def _resume_lost(self, exc: BaseException | None) -> None:
        try:
            self._lost(exc)
        finally:
            self.read_lock.release()

    # -- reading on the caller's thread ------------------------------------------

    def _take_role(self) -> bool:
        """Become the reader, if reads are on and no one else reads."""
        if not self.reads or not self.read_lock.acquire(blocking=False):
            return False
        if not self._enter():
            self.read_lock.release()
            return False
        self._holder = threading.get_ident()
        self._park()
        return True

    def _give_back(self) -> None:
        """Give up the read role, if this thread holds it."""
        if self._holder != threading.get_ident():
            return
        self._holder = None
        self.protocol.session.reader = None
        if not self._closing:
            try:
                self._unpark()
            except (OSError, ValueError):
                pass  # closed meanwhile
        self.read_lock.release()
        self._leave()

    def _read_until(self, waiter: Waiter, msgid: Any) -> bool:
        """Read (holding the role) until *waiter* is done: True.

        False: something must be done on the I/O thread (see module doc); it
        now has the rest of what was read, and the read role.
        """
        protocol = self.protocol
        session = protocol.session
        sock = self.sock
        poll = self._poll.poll
        session.reader = msgid
        try:
            while not waiter.done:
                poll()
                try:
                    data = sock.recv(READ_SIZE)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as exc:
                    self._hand_over(self._resume_lost, exc)
                    return False
                if not data:
                    self._hand_over(self._resume_lost, None)
                    return False
                events = session.receive(data)
                for event in events:
                    # Any event stops this reader: a Pause, a callback or a
                    # broken stream.
                    self._hand_over(self._resume, event, events)
                    return False
        except BaseException:
            # Interrupted (KeyboardInterrupt, a closed loop) perhaps half-way
            # through what it read: the stream cannot be trusted any more.
            protocol.abort_threadsafe()
            raise
        return True

    def _hand_over(self, function: Any, *args: Any) -> None:
        """Give the I/O thread the read role and what remains to be done."""
        session = self.protocol.session
        session.reader = None
        self._holder = None
        try:
            self.protocol.loop.call_soon_threadsafe(function, *args)
        except RuntimeError:
            # The loop is closed (the storage too): nothing will read again.
            session.lose()
            self.read_lock.release()
        self._leave()
