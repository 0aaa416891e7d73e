"""Captured output of one process: a ring of chunks until watchers acknowledge.

papa 1.0.6 semantics are kept: stdout and stderr share one byte budget
(``bufsize``); when it is exceeded the *oldest whole chunks* are dropped; a
chunk larger than the budget replaces everything and is kept whole; items
stay until a watcher acknowledges the batch that carried them, so a watcher
that disconnects without acknowledging leaves them for the next one.

Opt-in ``spill``: chunks that would be dropped go to a file instead and are
delivered (oldest first, one budget per batch) before the ring, so a slow
reader loses nothing.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

STDOUT = "out"
STDERR = "err"
CLOSED = "closed"
# The last bytes of output (stdout and stderr as they came) each ring keeps
# for ``peek``, acknowledged or not; at most its budget.
RECENT_BYTES = 16 * 1024


@dataclasses.dataclass(frozen=True)
class Chunk:
    """One item of captured output, or the ``closed`` item with exit code."""

    sequence: int
    kind: str
    timestamp: float
    data: bytes | int

    @property
    def size(self) -> int:
        return len(self.data) if isinstance(self.data, bytes) else 0


@dataclasses.dataclass(frozen=True)
class _SpilledChunk:
    sequence: int
    kind: str
    timestamp: float
    offset: int
    length: int


class OutputRing:
    """Chunks of one process's output waiting for acknowledgement."""

    def __init__(self, budget: int, spill_path: str | None = None):
        self.budget = budget
        self.spill_path = spill_path
        self.discarding = False
        self.dropped_bytes = 0
        self._chunks: collections.deque[Chunk] = collections.deque()
        self._used = 0
        self._sequence = 0
        self._last_timestamp = 0.0
        self._spilled: collections.deque[_SpilledChunk] = collections.deque()
        self._spill_file = None
        self._listeners: set[Callable[[], None]] = set()
        self._recent = bytearray()
        # Told the sequence a watcher acknowledged (papa.waited records how
        # far its output files have been delivered).
        self.on_acknowledge: Callable[[int], None] | None = None

    # -- producing ---------------------------------------------------------
    def add(self, kind: str, data: bytes | int) -> None:
        """Append a chunk (or the closed record) and wake the watchers."""
        if self.discarding:
            self._notify()  # watchers of a removed process must notice its end
            return
        self._sequence += 1
        # Strictly increasing timestamps: clients and papa's own ack rule
        # compare them, so two chunks must never share one.
        now = max(time.time(), self._last_timestamp + 1e-6)
        self._last_timestamp = now
        chunk = Chunk(self._sequence, kind, now, data)
        if isinstance(data, bytes):
            self._keep_recent(data)
        self._chunks.append(chunk)
        self._used += chunk.size
        # A chunk bigger than the whole budget pushes out everything older
        # and is kept whole, as in papa.
        while chunk.size and self._used > self.budget and len(self._chunks) > 1:
            oldest = self._chunks.popleft()
            self._used -= oldest.size
            if self.spill_path:
                self._spill(oldest)
            else:
                self.dropped_bytes += oldest.size
        self._notify()

    def _keep_recent(self, data: bytes) -> None:
        limit = min(self.budget, RECENT_BYTES)
        self._recent += data[-limit:]
        if len(self._recent) > limit:
            del self._recent[: len(self._recent) - limit]

    def recent_lines(self, count: int) -> list[str]:
        """The last *count* lines of output (``peek``): what watchers were
        sent and acknowledged too; nothing is consumed.  A line the kept
        bytes begin inside of is left out, unless it is the only one."""
        text = bytes(self._recent).decode("utf-8", "replace")
        lines = text.splitlines()
        if len(self._recent) >= min(self.budget, RECENT_BYTES) and len(lines) > 1:
            lines = lines[1:]  # the first may be cut
        return lines[-count:] if count else []

    def _spill(self, chunk: Chunk) -> None:
        if self._spill_file is None:
            self._spill_file = open(self.spill_path, "w+b")  # noqa: SIM115
        self._spill_file.seek(0, os.SEEK_END)
        offset = self._spill_file.tell()
        self._spill_file.write(chunk.data)
        self._spilled.append(
            _SpilledChunk(
                chunk.sequence, chunk.kind, chunk.timestamp, offset, chunk.size
            )
        )

    # -- consuming ---------------------------------------------------------
    def pending(self) -> list[Chunk]:
        """What a watcher should send now: spilled chunks first, then the ring.

        Without spill this is the whole ring, as papa sends it.  With spill
        one batch carries at most one budget of spilled bytes, so a huge
        backlog goes out in steps the reader acknowledges.
        """
        if not self._spilled:
            return list(self._chunks)
        chunks = []
        total = 0
        self._spill_file.flush()
        for spilled in self._spilled:
            if chunks and total + spilled.length > max(self.budget, 1):
                return chunks
            self._spill_file.seek(spilled.offset)
            data = self._spill_file.read(spilled.length)
            chunks.append(
                Chunk(spilled.sequence, spilled.kind, spilled.timestamp, data)
            )
            total += spilled.length
        return chunks + list(self._chunks)

    def acknowledge(self, through_sequence: int) -> None:
        """Forget every chunk up to and including ``through_sequence``."""
        while self._spilled and self._spilled[0].sequence <= through_sequence:
            self._spilled.popleft()
        if not self._spilled and self._spill_file is not None:
            self._spill_file.seek(0)
            self._spill_file.truncate()
        while self._chunks and self._chunks[0].sequence <= through_sequence:
            self._used -= self._chunks.popleft().size
        if self.on_acknowledge is not None:
            self.on_acknowledge(through_sequence)

    @property
    def last_sequence(self) -> int:
        """The sequence of the newest chunk added."""
        return self._sequence

    def __len__(self) -> int:
        return len(self._chunks) + len(self._spilled)

    @property
    def used(self) -> int:
        """Bytes held in memory."""
        return self._used

    # -- watchers ----------------------------------------------------------
    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever a chunk arrives."""
        self._listeners.add(listener)

    def unsubscribe(self, listener: Callable[[], None]) -> None:
        self._listeners.discard(listener)

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()

    def discard(self) -> None:
        """Drop everything held and everything to come (``remove processes``)."""
        self.discarding = True
        self._chunks.clear()
        self._used = 0
        self._spilled.clear()
        self.close()
        self._notify()

    def close(self) -> None:
        """Remove the spill file, if any, and tell watchers the entry is gone.

        Another watcher of the same process then ends its watch instead of
        waiting forever (papa 1.0.6 left it polling).
        """
        if self._spill_file is not None:
            self._spill_file.close()
            self._spill_file = None
            try:
                os.unlink(self.spill_path)
            except OSError:
                pass
        self._notify()
