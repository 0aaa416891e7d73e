"""One client connection: the asyncio adapter between a socket and the commands.

:class:`Session` is the asyncio protocol of one connection, and only that:
bytes go through the sans-IO :class:`~papa.protocol.CommandStream`, each
request is resolved in the command table (:mod:`papa.commands`) and its
handler called with the kernel, the stream and the arguments; the outcome is
written back.  Ordinary commands are answered synchronously inside
``data_received`` (no task, no queue: one loop iteration per request); a
command whose reply waits (``cancel processes``) and a watch run as a task.

While watching, batches are pushed as soon as output arrives (no polling),
and a client that goes away is noticed at once, on TCP as on Unix sockets.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, cast

from .commands import TABLE, CloseConnection, Watch
from .commands.watch import collect_batch, drop_vanished
from .errors import Error
from .protocol import BANNER, PROMPT, CommandStream, LineTooLong, batch_parts, tokenize

if TYPE_CHECKING:
    from .kernel import Kernel
    from .process import ManagedProcess

log = logging.getLogger(__name__)

__all__ = ["CloseConnection", "Session"]

# Requests read ahead of the one being handled (during a watch); beyond that
# reading pauses, so a flooding client is held back by TCP, not our memory.
QUEUED_REQUESTS = 64
EMPTY_REPLY = b"\n" + PROMPT


class _ClientGone(Exception):
    """A watch ends because its client left: nothing more is written."""


class Session(asyncio.Protocol):
    """The kernel side of one connection."""

    transport: asyncio.Transport  # set by connection_made, before anything else

    def __init__(self, kernel: Kernel):
        self.kernel = kernel
        self.stream = CommandStream()
        self.stream.authenticated = kernel.access.token is None
        self._pending: collections.deque[str | LineTooLong] = collections.deque()
        self._busy = False
        self._eof = False
        self._closed = False
        self._reading_paused = False
        self._writing_paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._task: asyncio.Future[None] | None = None

    # -- asyncio protocol ------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not asyncio.Transport subclasses).
        self.transport = cast(asyncio.Transport, transport)
        self.kernel.session_opened(self)
        self.transport.write(BANNER)

    def data_received(self, data: bytes) -> None:
        stream = self.stream
        if (
            data[-1:] == b"\n"
            and not stream.buffered
            and not self._busy
            and not self._pending
            and data.count(b"\n") == 1
            and len(data) <= stream.max_line_bytes
        ):
            # The common case, one whole request and nothing queued: answer
            # it at once, without the event list of receive_data().
            line = data[:-1].decode("utf-8", errors="replace").strip()
            if line:
                self._answer(line)
            else:
                self.transport.write(PROMPT)
            return
        events = stream.receive_data(data)
        if len(events) == 1 and not self._busy and not self._pending:
            # One request, nothing queued: answer at once.
            self._answer(events[0])
            return
        self._pending.extend(events)
        if len(self._pending) > QUEUED_REQUESTS and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake()
        if not self._busy:
            self._process()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        if not self._busy:
            self._process()
        return True  # we close once the requests already received are answered

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = self._eof = True
        self._wake()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)
        self.kernel.session_closed(self)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def abort(self) -> None:
        """Close the connection now (kernel shutdown)."""
        if self._task is not None:
            self._task.cancel()
        self.transport.close()

    # -- requests ----------------------------------------------------------------
    def _process(self) -> None:
        """Answer queued requests until one needs a task (a watch)."""
        while self._pending and not self._busy and not self._closed:
            event = self._pending.popleft()
            if self._reading_paused:
                self._resume_reading()
            if not self._answer(event):
                return
        if self._eof and not self._pending and not self._busy and not self._closed:
            self.transport.close()

    def _answer(self, event: str | LineTooLong) -> bool:
        """Answer one request; False when the next must wait (a task, or closed)."""
        try:
            reply = self._handle(event)
        except CloseConnection as close:
            self._close_with(close.final)
            return False
        if isinstance(reply, bytes):
            self.transport.write(reply)
            return True
        self._begin(reply)
        return False

    def _resume_reading(self) -> None:
        if self._reading_paused and len(self._pending) <= QUEUED_REQUESTS // 2:
            self._reading_paused = False
            self.transport.resume_reading()

    def _close_with(self, final: bytes) -> None:
        if final and not self._closed:
            self.transport.write(final)
        self.transport.close()
        self._closed = True

    def _handle(self, event: str | LineTooLong) -> bytes | Watch | Awaitable[str]:
        """The reply bytes, or what needs a task: a watch or an awaited reply."""
        if isinstance(event, LineTooLong):
            return self.stream.error(
                f"Line too long; the limit is {event.limit} bytes and the line was ignored"
            )
        if not event:
            return PROMPT
        try:
            command, arguments = TABLE.find(tokenize(event, self.stream.escapes))
            if not self.stream.authenticated and not command.before_auth:
                raise Error("Authentication required: send 'auth TOKEN' first")
            result = command.handler(self.kernel, self.stream, arguments)
        except CloseConnection:
            raise
        except Error as exc:
            return self.stream.error(str(exc))
        except Exception as exc:  # a bug must not take the kernel down
            log.exception("command %r failed", event)
            return self.stream.error(f"{type(exc).__name__}: {exc}")
        if type(result) is str:
            if result and result[-1] == "\n":
                return result.encode("utf-8") + PROMPT
            return (result + "\n").encode("utf-8") + PROMPT
        if result is None:
            return EMPTY_REPLY
        assert not isinstance(result, str)  # only Watch and awaitables are left
        return result

    def _begin(self, outcome: Watch | Awaitable[str]) -> None:
        """Run what takes time as a task; requests wait for it in order."""
        if isinstance(outcome, Watch):
            self.transport.write(f"{outcome.preamble}\n".encode())
            outcome = self.watch(dict(outcome.targets))
        self._busy = True
        self._task = asyncio.ensure_future(self._run_task(outcome))

    async def _run_task(self, awaitable: Awaitable[str]) -> None:
        try:
            result = await awaitable
        except CloseConnection as close:
            self._close_with(close.final)
            return
        except Error as exc:
            reply = self.stream.error(str(exc))
        except (_ClientGone, ConnectionError, OSError):
            self._close_with(b"")
            return
        except asyncio.CancelledError:
            return
        except Exception as exc:  # a bug must not take the kernel down
            log.exception("command failed")
            reply = self.stream.error(f"{type(exc).__name__}: {exc}")
        else:
            reply = self.stream.reply(result)
        finally:
            self._busy = False
            self._task = None
        if not self._closed:
            self.transport.write(reply)
            self._process()

    # -- waiting (used by watches) --------------------------------------------------
    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _next_event(self) -> str | LineTooLong | None:
        """The next request line (an acknowledgement); None once the client left."""
        while not self._pending:
            if self._eof:
                return None
            await self._wait()
        event = self._pending.popleft()
        self._resume_reading()
        return event

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def _drain(self) -> None:
        if self._writing_paused and not self._closed:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None
        if self._closed:
            raise ConnectionResetError("client went away")

    # -- watching ----------------------------------------------------------------
    async def watch(self, targets: dict[str, ManagedProcess]) -> str:
        """Push batches until nothing is left, the client says q, or leaves.

        Raises _ClientGone when the client left: what it did not
        acknowledge is kept for the next watcher.
        """
        for process in targets.values():
            if process.output is not None:
                process.output.subscribe(self._wake)
        try:
            while True:
                drop_vanished(targets, self.kernel.processes, self._wake)
                if not targets:
                    return "Nothing left to watch"
                records, marks, closed = collect_batch(targets)
                if not records:
                    # Lines typed meanwhile stay queued: each acknowledges the
                    # next batch, as they would have in papa (unread socket).
                    if self._eof:
                        raise _ClientGone
                    await self._wait()
                    continue
                self.transport.writelines(batch_parts(records))
                await self._drain()
                event = await self._next_event()
                if event is None:
                    raise _ClientGone
                for name, sequence in marks.items():
                    output = targets[name].output
                    assert output is not None  # only captured output has marks
                    output.acknowledge(sequence)
                for name in closed:
                    process = targets.pop(name)
                    if process.output is not None:
                        process.output.unsubscribe(self._wake)
                    self.kernel.forget_process(process)
                if not targets:
                    return "Nothing left to watch"
                if type(event) is str and event.lower() == "q":
                    return "Stopped watching"
        finally:
            for process in targets.values():
                if process.output is not None:
                    process.output.unsubscribe(self._wake)
