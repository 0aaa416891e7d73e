"""The papa kill soak's watcher: it reads through restarts and tells what was lost.

:class:`Reader` watches every process of a kernel from one ``Papa()`` client
in a thread and reconnects (and watches again) whenever the kernel dies.
What it receives is kept per *epoch* (one watch, one connection) and stream
(process and out/err).  papa delivers at least once: a batch the client
received but whose acknowledgement the killed kernel never journaled comes
again after the restart, and nothing else may.  So when epochs are joined
(:func:`join_epochs`), each epoch's bytes must continue the previous one
either where that epoch's last batch began (that batch sent again) or where
it ended; any other overlap or gap shows up as a line missing, repeated or
out of order (:func:`numbered_lines`).
"""

from __future__ import annotations

import threading
import time

import papa
from papa.errors import Error

# Names of streams: (process name, "out" or "err").
Stream = tuple[str, str]


class Client(papa.Papa):
    """``Papa()`` that never starts a kernel of its own.

    papa's client starts one when none answers; in the soak that kernel,
    without the state directory, would take the socket while ours restarts.
    """

    def _spawn_kernel(self) -> None:
        return None


class Epoch:
    """What one watch received of one stream, and where its last batch began."""

    def __init__(self):
        self.data = bytearray()
        self.last_batch_start: int | None = None


class Reader(threading.Thread):
    """Watches every process, through kernel restarts, until the watch ends."""

    def __init__(self, address: str, deadline: float, hold: float = 0.01):
        super().__init__(name="papa-soak-reader", daemon=True)
        self.address = address
        self.deadline = deadline
        # Each batch is held this long before it is acknowledged (by the next
        # read), so that kills often come between receipt and acknowledgement.
        self.hold = hold
        self.lock = threading.Lock()
        self.epochs: dict[Stream, list[Epoch]] = {}
        self.closed: dict[str, list[int]] = {}  # every closed record received
        self.batches = 0
        self.watches = 0
        self.finished = threading.Event()
        self.stopping = threading.Event()  # the children were told to end
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            while not self._watch_once():
                if time.monotonic() > self.deadline:
                    raise TimeoutError("the watch did not end in time")
                time.sleep(0.05)
        except BaseException as exc:  # reported by the controller
            self.failure = exc
        finally:
            self.finished.set()

    def _watch_once(self) -> bool:
        """One connection's watch; True once every process was delivered."""
        try:
            with Client(self.address, connection_timeout=5) as client:
                watcher = client.watch_processes("*")
                with self.lock:
                    self.watches += 1
                    for epochs in self.epochs.values():
                        epochs.append(Epoch())
                while True:
                    batch = watcher.read()
                    if not watcher:
                        return True  # "Nothing left to watch": all delivered
                    self._take(batch)
                    time.sleep(self.hold)
        except Error as exc:
            # The last acknowledgement was taken, the kernel killed before
            # its "Nothing left to watch" reached us: nothing is left.
            return self.stopping.is_set() and "Nothing to watch" in str(exc)
        except OSError:
            return False

    def _take(self, batch) -> None:
        out, err, closed = batch
        with self.lock:
            self.batches += 1
            seen: set[Stream] = set()
            for kind, records in (("out", out), ("err", err)):
                for record in records:
                    stream = (record.name, kind)
                    epochs = self.epochs.setdefault(stream, [])
                    if not epochs or len(epochs) < self.watches:
                        epochs.extend(
                            Epoch() for _ in range(self.watches - len(epochs))
                        )
                    epoch = epochs[-1]
                    if stream not in seen:
                        epoch.last_batch_start = len(epoch.data)
                        seen.add(stream)
                    epoch.data += record.data
            # Streams absent from this batch had their last one acknowledged.
            for stream, epochs in self.epochs.items():
                if stream not in seen and epochs:
                    epochs[-1].last_batch_start = None
            for record in closed:
                self.closed.setdefault(record.name, []).append(record.data)

    def joined(self) -> dict[Stream, tuple[bytes, int]]:
        """Every stream's bytes as delivered once, and how many came twice."""
        with self.lock:
            return {
                stream: join_epochs(epochs) for stream, epochs in self.epochs.items()
            }


def join_epochs(epochs: list[Epoch]) -> tuple[bytes, int]:
    """The stream's bytes with each allowed re-delivery folded in; the
    number of bytes delivered twice."""
    joined = bytearray()
    start = end = 0  # where the last batch of the previous epochs began, ended
    twice = 0
    for epoch in epochs:
        data = bytes(epoch.data)
        if not data:
            continue  # nothing came: the kernel still owes the same bytes
        again = bytes(joined[start:end])
        if start < end and (data.startswith(again) or again.startswith(data)):
            base = start
            twice += min(len(data), len(again))
        else:
            base = len(joined)
        del joined[base:]
        joined += data
        end = len(joined)
        start = end if epoch.last_batch_start is None else base + epoch.last_batch_start
    return bytes(joined), twice


def numbered_lines(data: bytes, tag: str, error_stream: bool) -> tuple[int, int]:
    """(complete lines in order from 0, lines out of place) of one stream."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    prefix = f"{tag} e" if error_stream else f"{tag} "
    good = wrong = 0
    for index, line in enumerate(lines):
        if line.decode(errors="replace") == f"{prefix}{index}":
            good += 1
        elif index == len(lines) - 1 and not data.endswith(b"\n"):
            break  # the last line is still being written
        else:
            wrong += 1
    return good, wrong
