"""One client connection: read requests, run commands, stream watched output.

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
from .errors import Error
from .output import CLOSED
from .protocol import (
    BANNER,
    PROMPT,
    CommandStream,
    Line,
    LineTooLong,
    batch,
    closed_record,
    output_record,
)

log = logging.getLogger(__name__)

READ_SIZE = 64 * 1024
# Requests read ahead of the one being handled; beyond that the socket is
# left unread so a flooding client is held back by TCP, not by our memory.
QUEUED_REQUESTS = 64


class CloseConnection(Exception):
    """Send ``final`` (if any) and close the connection."""

    def __init__(self, final: bytes = b""):
        super().__init__()
        self.final = final


class Session:
    """The kernel side of one connection."""

    def __init__(
        self, kernel, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ):
        self.kernel = kernel
        self.reader = reader
        self.writer = writer
        self.stream = CommandStream()
        self._events: asyncio.Queue = asyncio.Queue(QUEUED_REQUESTS)
        self._stashed: collections.deque = collections.deque()
        self._get_task: asyncio.Task | None = None
        self._pump_task: asyncio.Task | None = None

    # -- connection plumbing -------------------------------------------------
    async def run(self) -> None:
        """Serve requests until the client leaves or quits."""
        self._pump_task = asyncio.create_task(self._pump())
        try:
            self.writer.write(BANNER)
            while True:
                event = await self._next_event()
                if event is None:
                    break
                reply = await self._handle(event)
                if reply is None:
                    break
                self.writer.write(reply)
                await self.writer.drain()
        except CloseConnection as close:
            if close.final:
                self.writer.write(close.final)
        except (ConnectionError, OSError):
            pass
        finally:
            self._pump_task.cancel()
            if self._get_task is not None:
                self._get_task.cancel()
            try:
                self.writer.close()
            except (ConnectionError, OSError, RuntimeError):
                pass

    async def _pump(self) -> None:
        """Turn received bytes into request events; None marks the end."""
        try:
            while True:
                data = await self.reader.read(READ_SIZE)
                if not data:
                    break
                for event in self.stream.receive_data(data):
                    await self._events.put(event)
        except (ConnectionError, OSError):
            pass
        await self._events.put(None)

    async def _next_event(self):
        if self._stashed:
            return self._stashed.popleft()
        if self._get_task is not None:
            task, self._get_task = self._get_task, None
            return await task
        return await self._events.get()

    def abort(self) -> None:
        """Close the connection now (kernel shutdown)."""
        self.writer.close()

    # -- dispatch ----------------------------------------------------------------
    async def _handle(self, event) -> bytes | None:
        if isinstance(event, LineTooLong):
            return self.stream.error(
                f"Line too long; the limit is {event.limit} bytes and the line was ignored"
            )
        if not event.text:
            return PROMPT
        try:
            words = self.stream.tokenize(event.text)
            command, arguments = commands.lookup(words)
            handler = getattr(self, f"do_{command.handler}")
            result = handler(arguments)
            if asyncio.iscoroutine(result):
                result = await result
        except CloseConnection:
            raise
        except Error as exc:
            return self.stream.error(str(exc))
        except Exception as exc:  # a bug must not take the kernel down
            log.exception("command %r failed", event.text)
            return self.stream.error(f"{type(exc).__name__}: {exc}")
        if result is _GONE:
            return None
        return self.stream.reply(result)

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
        return None if value is None else self.stream.quote(value)

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

    async def do_make_process(self, arguments: list[str]):
        process, watch = self.kernel.make_process(arguments)
        line = process.line(self.stream.quote)
        if not watch:
            return line
        self.writer.write(f"{line}\n".encode())
        return await self._watch({process.name: process})

    async def do_watch_processes(self, arguments: list[str]):
        processes = self.kernel.processes
        names = commands_match(processes, arguments, required=True)
        if not names:
            raise Error("Nothing to watch")
        self.writer.write(f"Watching {len(names)}\n".encode())
        return await self._watch({name: processes[name] for name in names})

    # -- watching ----------------------------------------------------------------
    async def _watch(self, targets: dict):
        """Push batches until nothing is left, the client says q, or leaves."""
        wake = asyncio.Event()
        for process in targets.values():
            if process.output is not None:
                process.output.subscribe(wake.set)
        try:
            while True:
                self._drop_vanished(targets, wake)
                if not targets:
                    return "Nothing left to watch"
                records, marks, closed = self._collect(targets)
                if not records:
                    if not await self._wait_for_output(wake):
                        return _GONE
                    continue
                self.writer.write(batch(records))
                await self.writer.drain()
                event = await self._next_event()
                if event is None:
                    return _GONE  # not acknowledged: kept for the next watcher
                for name, sequence in marks.items():
                    targets[name].output.acknowledge(sequence)
                for name in closed:
                    process = targets.pop(name)
                    process.output.unsubscribe(wake.set)
                    self.kernel.forget_process(process)
                if not targets:
                    return "Nothing left to watch"
                if isinstance(event, Line) and event.text.lower() == "q":
                    return "Stopped watching"
        finally:
            for process in targets.values():
                if process.output is not None:
                    process.output.unsubscribe(wake.set)

    def _drop_vanished(self, targets: dict, wake: asyncio.Event) -> None:
        """Forget watched processes that were removed and have ended."""
        for name, process in list(targets.items()):
            if self.kernel.processes.get(name) is not process and not (
                process.output and len(process.output)
            ):
                if process.output is not None:
                    process.output.unsubscribe(wake.set)
                del targets[name]

    @staticmethod
    def _collect(targets: dict):
        records: list[bytes] = []
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
                        output_record(chunk.kind, name, chunk.timestamp, chunk.data)
                    )
            if chunks:
                marks[name] = chunks[-1].sequence
        return records, marks, closed

    async def _wait_for_output(self, wake: asyncio.Event) -> bool:
        """Wait for output or for the client; False when the client left."""
        if self._get_task is None:
            self._get_task = asyncio.ensure_future(self._events.get())
        wake.clear()
        waiter = asyncio.ensure_future(wake.wait())
        try:
            done, _ = await asyncio.wait(
                {self._get_task, waiter}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiter.cancel()
        if self._get_task in done:
            event = self._get_task.result()
            self._get_task = None
            if event is None:
                return False
            # A line typed before a batch arrived acknowledges that batch,
            # as it would have in papa (it sat unread in the socket).
            self._stashed.append(event)
        return True


_GONE = object()


def commands_match(table: dict, patterns: list[str], required: bool = False) -> list:
    """Pattern matching shared with the kernel (see :func:`papa.kernel.match`)."""
    from .kernel import match

    return match(table, patterns, required)
