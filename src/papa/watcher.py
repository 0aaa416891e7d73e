"""Watching processes from the client: batches of output and exit codes.

A :class:`Watcher` owns the connection it was made on until the watch
ends.  Fixes over papa 1.0.6: ``ready`` is true only when a batch (or the
end of the watch) is waiting; ``read()`` returns an empty, false
:class:`WatchBatch` at the end instead of None; names are split from the
right, so a ``:`` in a name (real papa kernels allow it) does not break.
"""

from __future__ import annotations

import select
from collections import namedtuple
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .closing import ClosedOnExit
from .connection import ClientConnection
from .errors import Error

if TYPE_CHECKING:
    from .client import Papa

ProcessOutput = namedtuple("ProcessOutput", "name timestamp data")

_END_OF_WATCH = ("Nothing left to watch", "Stopped watching")


def _parse_watch_line(line: str) -> tuple[str, str, float, int]:
    """``KIND:NAME:TIMESTAMP:VALUE`` (``out``/``err`` with a byte count, or
    ``closed`` with an exit code) as ``(kind, name, timestamp, value)``;
    anything else from the kernel is an :class:`Error`, not a traceback."""
    kind, _, rest = line.partition(":")
    try:
        name, timestamp, text = rest.rsplit(":", 2)
        value, moment = int(text), float(timestamp)
    except ValueError:
        raise Error(f"Malformed watch line from the kernel: {line!r}") from None
    if kind not in ("out", "err", "closed") or (kind != "closed" and value < 0):
        raise Error(f"Malformed watch line from the kernel: {line!r}")
    return kind, name, moment, value


class WatchBatch(tuple[list[ProcessOutput], list[ProcessOutput], list[ProcessOutput]]):
    """``(out, err, closed)``; false when all three are empty (end of watch)."""

    def __new__(
        cls,
        out: Iterable[ProcessOutput] = (),
        err: Iterable[ProcessOutput] = (),
        closed: Iterable[ProcessOutput] = (),
    ) -> WatchBatch:
        return super().__new__(cls, (list(out), list(err), list(closed)))

    def __bool__(self) -> bool:
        return any(self)


class Watcher(ClosedOnExit):
    """Output and exit codes of watched processes, batch by batch.

    Owns the connection it was made on until the watch ends; ``fileno()``
    makes it usable with ``select``.
    """

    def __init__(self, papa_object: Papa, connection: ClientConnection) -> None:
        self.papa_object = papa_object
        self.connection: ClientConnection | None = connection
        self.exit_code: dict[str, int] = {}
        self._need_ack = False

    def __bool__(self) -> bool:
        return self.connection is not None

    def __len__(self) -> int:
        return 1 if self.connection is not None else 0

    def fileno(self) -> int:
        if self.connection is None:
            raise ValueError("the watch has ended: this watcher has no connection")
        return self.connection.sock.fileno()

    @property
    def ready(self) -> bool:
        """True when ``read()`` will not block: a batch (or the end) waits."""
        if self.connection is None:
            return False
        if self._need_ack:
            return False  # nothing comes until this batch is acknowledged
        if self.connection.buffer:
            return True
        readable, _, _ = select.select([self.connection.sock], [], [], 0)
        return bool(readable)

    def read(self) -> WatchBatch:
        """Acknowledge the previous batch, then return the next one.

        Blocks until a batch arrives.  At the end of the watch (every process
        closed and acknowledged, or stopped) returns an empty, false batch
        and the watcher becomes false.
        """
        self.acknowledge()
        if self.connection is None:
            return WatchBatch()
        connection = self.connection
        out: list[ProcessOutput] = []
        err: list[ProcessOutput] = []
        closed: list[ProcessOutput] = []
        while True:
            line = connection.read_line(b"] ")
            if line == "] ":
                self._need_ack = True
                return WatchBatch(out, err, closed)
            if line in _END_OF_WATCH:
                connection.read_exactly(2)  # the prompt
                self._hand_back()
                return WatchBatch(out, err, closed)
            if line.startswith("Error:"):
                connection.buffer = line.encode() + b"\n" + connection.buffer
                connection.read_reply()
            kind, name, moment, value = _parse_watch_line(line)
            if kind == "closed":
                self.exit_code[name] = value
                closed.append(ProcessOutput(name, moment, value))
                continue
            data = connection.read_exactly(value + 1)
            if data[-1:] != b"\n":
                raise Error(f"Malformed watch output from the kernel after {line!r}")
            (out if kind == "out" else err).append(
                ProcessOutput(name, moment, data[:-1])
            )

    def acknowledge(self) -> None:
        """Tell the kernel the last batch was received (it may forget it)."""
        if self._need_ack and self.connection is not None:
            self.connection.send_raw(b"\n")
            self._need_ack = False

    def close(self) -> None:
        """Stop watching; the connection goes back to the Papa object."""
        if self.connection is None:
            return
        if self._need_ack:
            self._need_ack = False
            try:
                self.connection.send_raw(b"q\n")
                self.connection.read_reply()
            except (Error, OSError):
                self.connection.close()
                self.connection = None
                return
            self._hand_back()
        else:
            self.connection.close()
            self.connection = None

    def _hand_back(self) -> None:
        connection = self.connection
        if connection is None:
            return
        if self.papa_object.connection is None:
            self.papa_object.connection = connection
        else:
            connection.close()
        self.connection = None
