"""One client connection: read requests, run commands, stream watched output.

:class:`Session` is the asyncio protocol of one connection.  Bytes go
through the sans-IO :class:`~papa.protocol.CommandStream`; ordinary
commands are answered synchronously inside ``data_received`` (no task, no
queue: one loop iteration per request), and only watches run as a task.

The handlers named in :mod:`papa.commands` are the ``do_*`` methods here.
A handler returns the reply payload (papa adds the newline and prompt),
raises :class:`~papa.errors.Error` for an ``Error:`` reply, or raises
:class:`CloseConnection` to send a last message and hang up.

While watching, batches are pushed as soon as output arrives (no polling),
and a client that goes away is noticed at once, on TCP as on Unix sockets.
"""

from __future__ import annotations

import asyncio
import collections
import logging

from . import commands
from .commands import lookup
from .errors import Error
from .output import CLOSED
from .protocol import (
    BANNER,
    PROMPT,
    CommandStream,
    batch_parts,
    closed_record,
    escape,
    output_record_parts,
    tokenize,
)

log = logging.getLogger(__name__)

# Requests read ahead of the one being handled (during a watch); beyond that
# reading pauses, so a flooding client is held back by TCP, not our memory.
QUEUED_REQUESTS = 64
EMPTY_REPLY = b"\n" + PROMPT
# Command -> the Session function that runs it (filled on first use).
_HANDLERS: dict = {}


class CloseConnection(Exception):
    """Send ``final`` (if any) and close the connection."""

    def __init__(self, final: bytes = b""):
        super().__init__()
        self.final = final


class Session(asyncio.Protocol):
    """The kernel side of one connection."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.stream = CommandStream()
        self.transport: asyncio.Transport | None = None
        self._pending: collections.deque = collections.deque()
        self._busy = False
        self._eof = False
        self._closed = False
        self._reading_paused = False
        self._writing_paused = False
        self._waiter: asyncio.Future | None = None
        self._drain_waiter: asyncio.Future | None = None
        self._task: asyncio.Task | None = None

    # -- asyncio protocol ------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.kernel.session_opened(self)
        transport.write(BANNER)

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
            try:
                reply = self._handle(line) if line else PROMPT
            except CloseConnection as close:
                self._close_with(close.final)
                return
            if type(reply) is bytes:
                self.transport.write(reply)
            else:
                self._busy = True
                self._task = asyncio.ensure_future(self._run_task(reply))
            return
        events = stream.receive_data(data)
        if len(events) == 1 and not self._busy and not self._pending:
            # The common case: one request, nothing queued: answer at once.
            try:
                reply = self._handle(events[0])
            except CloseConnection as close:
                self._close_with(close.final)
                return
            if type(reply) is bytes:
                self.transport.write(reply)
                return
            self._busy = True
            self._task = asyncio.ensure_future(self._run_task(reply))
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

    def connection_lost(self, exc) -> None:
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
        if self.transport is not None:
            self.transport.close()

    # -- requests ----------------------------------------------------------------
    def _process(self) -> None:
        """Answer queued requests until one needs a task (a watch)."""
        while self._pending and not self._busy and not self._closed:
            event = self._pending.popleft()
            if self._reading_paused:
                self._resume_reading()
            try:
                reply = self._handle(event)
            except CloseConnection as close:
                self._close_with(close.final)
                return
            if type(reply) is not bytes:  # a coroutine: a watch
                self._busy = True
                self._task = asyncio.ensure_future(self._run_task(reply))
                return
            self.transport.write(reply)
        if self._eof and not self._pending and not self._busy and not self._closed:
            self.transport.close()

    def _resume_reading(self) -> None:
        if self._reading_paused and len(self._pending) <= QUEUED_REQUESTS // 2:
            self._reading_paused = False
            self.transport.resume_reading()

    def _close_with(self, final: bytes) -> None:
        if final and not self._closed:
            self.transport.write(final)
        self.transport.close()
        self._closed = True

    def _handle(self, event):
        """The reply bytes, or a coroutine for handlers that take time."""
        if type(event) is not str:
            return self.stream.error(
                f"Line too long; the limit is {event.limit} bytes and the line was ignored"
            )
        if not event:
            return PROMPT
        try:
            command, arguments = lookup(tokenize(event, self.stream.escapes))
            handler = _HANDLERS.get(command)
            if handler is None:
                handler = _HANDLERS[command] = getattr(Session, command.method)
            result = handler(self, arguments)
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
        return result  # a coroutine (watch)

    async def _run_task(self, coroutine) -> None:
        try:
            result = await coroutine
        except CloseConnection as close:
            self._close_with(close.final)
            return
        except Error as exc:
            reply = self.stream.error(str(exc))
        except (ConnectionError, OSError):
            self._close_with(b"")
            return
        except asyncio.CancelledError:
            return
        except Exception as exc:  # a bug must not take the kernel down
            log.exception("command failed")
            reply = self.stream.error(f"{type(exc).__name__}: {exc}")
        else:
            if result is _GONE:
                self._close_with(b"")
                return
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

    async def _next_event(self):
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

    # -- handlers ----------------------------------------------------------------
    def do_help(self, arguments: list[str]) -> str:
        if arguments:
            return commands.topic_help(arguments)
        return commands.general_help()

    def do_quit(self, arguments: list[str]) -> None:
        raise CloseConnection(b"ok\n")

    def do_exit_if_idle(self, arguments: list[str]) -> str:
        if not self.kernel.is_idle():
            return "not idle"
        self.kernel.exit_requested = True
        raise CloseConnection(b"Exiting papa!\n> ")

    def do_protocol(self, arguments: list[str]) -> str:
        if not arguments:
            return "escapes"
        if [word.lower() for word in arguments] == ["escapes"]:
            self.stream.escapes = True
            return "escapes on"
        raise Error(
            f"Unknown protocol extension {' '.join(arguments)!r}; known: escapes"
        )

    def do_set_value(self, arguments: list[str]) -> None:
        if not arguments or arguments == ["*"]:
            raise Error("Value requires a name")
        value = " ".join(arguments[1:]) if len(arguments) > 1 else None
        self.kernel.set_value(arguments[0], value)

    def do_get_value(self, arguments: list[str]) -> str | None:
        if not arguments:
            raise Error("Value requires a name")
        value = self.kernel.values.get(arguments[0])
        if value is None or not self.stream.escapes:
            return value
        return escape(value)

    def do_list_values(self, arguments: list[str]) -> str:
        quote = self.stream.quote
        values = self.kernel.values
        return "\n".join(
            sorted(
                f"{quote(name)} {quote(values[name])}"
                for name in commands_match(values, arguments)
            )
        )

    def do_remove_values(self, arguments: list[str]) -> None:
        self.kernel.remove_values(arguments)

    def do_make_socket(self, arguments: list[str]) -> str:
        return self._socket_line(self.kernel.make_socket(arguments))

    def do_list_sockets(self, arguments: list[str]) -> str:
        sockets = self.kernel.sockets
        return "\n".join(
            sorted(
                self._socket_line(sockets[name])
                for name in commands_match(sockets, arguments)
            )
        )

    def _socket_line(self, managed) -> str:
        line = managed.line()
        if self.stream.escapes and managed.spec.path:
            line = line.replace(
                f"path={managed.spec.path}",
                f"path={self.stream.quote(managed.spec.path)}",
            )
        return line

    def do_remove_sockets(self, arguments: list[str]) -> None:
        self.kernel.remove_sockets(arguments)

    def do_list_processes(self, arguments: list[str]) -> str:
        processes = self.kernel.processes
        quote = self.stream.quote
        return "\n".join(
            sorted(
                processes[name].line(quote)
                for name in commands_match(processes, arguments)
            )
        )

    def do_remove_processes(self, arguments: list[str]) -> None:
        self.kernel.remove_processes(arguments)

    def do_cancel_processes(self, arguments: list[str]):
        return self._cancel(arguments)  # a coroutine: the reply waits for the ends

    async def _cancel(self, arguments: list[str]) -> str:
        return "\n".join(await self.kernel.cancel_processes(arguments))

    def do_list_partitions(self, arguments: list[str]) -> str:
        if arguments:
            raise Error("list partitions takes no argument")
        stream = self.stream

        def text(value) -> str:
            value = str(value)
            return stream.quote(value) if stream.escapes else value.replace(" ", "_")

        return "\n".join(
            " ".join(
                [text(row.pop("name"))]
                + [f"{key}={text(value)}" for key, value in row.items()]
            )
            for row in self.kernel.list_partitions()
        )

    def do_make_process(self, arguments: list[str]):
        process, watch = self.kernel.make_process(arguments)
        line = process.line(self.stream.quote)
        if not watch:
            return line
        self.transport.write(f"{line}\n".encode())
        return self._watch({process.name: process})

    def do_watch_processes(self, arguments: list[str]):
        processes = self.kernel.processes
        names = commands_match(processes, arguments, required=True)
        if not names:
            raise Error("Nothing to watch")
        self.transport.write(f"Watching {len(names)}\n".encode())
        return self._watch({name: processes[name] for name in names})

    # -- watching ----------------------------------------------------------------
    async def _watch(self, targets: dict):
        """Push batches until nothing is left, the client says q, or leaves."""
        for process in targets.values():
            if process.output is not None:
                process.output.subscribe(self._wake)
        try:
            while True:
                self._drop_vanished(targets)
                if not targets:
                    return "Nothing left to watch"
                records, marks, closed = self._collect(targets)
                if not records:
                    # Lines typed meanwhile stay queued: each acknowledges the
                    # next batch, as they would have in papa (unread socket).
                    if self._eof:
                        return _GONE
                    await self._wait()
                    continue
                self.transport.writelines(batch_parts(records))
                await self._drain()
                event = await self._next_event()
                if event is None:
                    return _GONE  # not acknowledged: kept for the next watcher
                for name, sequence in marks.items():
                    targets[name].output.acknowledge(sequence)
                for name in closed:
                    process = targets.pop(name)
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

    def _drop_vanished(self, targets: dict) -> None:
        """Forget watched processes that were removed and have ended."""
        for name, process in list(targets.items()):
            if self.kernel.processes.get(name) is not process and not (
                process.output and len(process.output)
            ):
                if process.output is not None:
                    process.output.unsubscribe(self._wake)
                del targets[name]

    @staticmethod
    def _collect(targets: dict):
        records: list = []
        marks: dict[str, int] = {}
        closed: list[str] = []
        for name, process in targets.items():
            if process.output is None:
                continue
            chunks = process.output.pending()
            for chunk in chunks:
                if chunk.kind == CLOSED:
                    records.append(closed_record(name, chunk.timestamp, chunk.data))
                    closed.append(name)
                else:
                    records.append(
                        output_record_parts(
                            chunk.kind, name, chunk.timestamp, chunk.data
                        )
                    )
            if chunks:
                marks[name] = chunks[-1].sequence
        return records, marks, closed


_GONE = object()


def commands_match(table: dict, patterns: list[str], required: bool = False) -> list:
    """Pattern matching shared with the kernel (see :func:`papa.kernel.match`)."""
    from .kernel import match

    return match(table, patterns, required)
