"""Output files a process writes, delivered from the last acknowledged byte.

A spilled local child (:mod:`papa.waited`) and a Slurm job
(:mod:`papa.slurm.job`) both write their output into files that outlive the
kernel.  :class:`FileTail` reads those files into the process's
:class:`~papa.output.OutputRing` as they grow, at most the ring's free budget
at a time (so nothing is ever dropped), and learns from the ring's
acknowledgements how far each file has been delivered.  That offset is what
the state directory keeps: a restarted kernel starts reading there, so what
a watcher received but had not acknowledged is sent again (at least once)
and nothing acknowledged is sent twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Callable

from .output import OutputRing

log = logging.getLogger(__name__)

TAIL_SECONDS = 0.02
READ_SIZE = 256 * 1024


class FileTail:
    """Reads output files into a ring; tracks the acknowledged offsets.

    *acknowledged* (file key -> byte offset) is updated in place as watchers
    acknowledge; *on_progress* is called after each such update.
    """

    def __init__(
        self,
        output: OutputRing,
        acknowledged: dict[str, int],
        on_progress: Callable[[], None] | None = None,
    ):
        self.output = output
        self.acknowledged = acknowledged
        self.on_progress = on_progress
        self._kinds: dict[str, str] = {}
        self._fds: dict[str, int] = {}
        self._read: dict[str, int] = {}
        self._marks: deque[tuple[int, str, int]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drained: Callable[[], None] | None = None
        output.on_acknowledge = self._acknowledged

    def add(self, key: str, kind: str, path: str) -> None:
        """Tail *path* (output of *kind*) from its acknowledged offset on."""
        if key in self._fds:
            return
        try:
            self._fds[key] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            log.error("cannot read output file %s: %s", path, exc)
            return
        self._kinds[key] = kind
        self._read[key] = self.acknowledged.get(key, 0)
        self.poke()

    def poke(self) -> None:
        """Read soon (and then keep reading every few milliseconds)."""
        if self._timer is None and self._fds:
            self._loop = self._loop or asyncio.get_running_loop()
            self._timer = self._loop.call_soon(self._read_files)

    def when_drained(self, callback: Callable[[], None]) -> None:
        """The writer has ended: call *callback* once every byte was read."""
        self._drained = callback
        if self.done():
            self._call_drained()
        else:
            self.poke()

    def done(self) -> bool:
        """Every byte of every file has been read into the ring."""
        for key, fd in self._fds.items():
            if self._read[key] < os.fstat(fd).st_size:
                return False
        return True

    def _read_files(self) -> None:
        self._timer = None
        output = self.output
        more = False
        for key, fd in self._fds.items():
            room = READ_SIZE
            if output.budget:
                room = min(room, output.budget - output.used)
            if room <= 0:
                continue
            data = os.pread(fd, room, self._read[key])
            if data:
                self._read[key] += len(data)
                output.add(self._kinds[key], data)
                self._marks.append((output.last_sequence, key, self._read[key]))
                more = more or len(data) == room
        if self._drained is not None and not more and self.done():
            self._call_drained()
            return
        if self._loop is not None and self._fds:
            if more:
                self._timer = self._loop.call_soon(self._read_files)
            else:
                self._timer = self._loop.call_later(TAIL_SECONDS, self._read_files)

    def _call_drained(self) -> None:
        callback, self._drained = self._drained, None
        if callback is not None:
            callback()

    def _acknowledged(self, through_sequence: int) -> None:
        progressed = False
        while self._marks and self._marks[0][0] <= through_sequence:
            _, key, offset = self._marks.popleft()
            self.acknowledged[key] = offset
            progressed = True
        if progressed and self.on_progress is not None:
            self.on_progress()
        if progressed and self._timer is not None and self._loop is not None:
            # Room was made: read now rather than at the next tick.
            self._timer.cancel()
            self._timer = self._loop.call_soon(self._read_files)

    def close(self) -> None:
        """Stop reading and close the files (they stay on disk)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}
