"""The state directory: what a restarted kernel remembers.

papa 1.0.6 keeps everything in memory, so a restarted kernel forgets its
values, sockets and children.  With ``--state-dir`` the kernel writes
``state.json`` (values, socket specs, the processes it started with their
pid and start time) shortly after every change, atomically, and reads it at
start: values come back, sockets are bound again (on the same port when it
is free) and processes still alive are listed again as *adopted*.

A process is recognised by its pid *and* its start time in ``/proc``, so a
recycled pid is never mistaken for it.  An adopted process is no longer the
kernel's child: its output pipes died with the old kernel and its exit code
cannot be collected, so its ``closed`` record carries
:data:`~papa.process.UNKNOWN_EXIT_CODE`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import tempfile

from .output import OutputRing
from .process import (
    UNKNOWN_EXIT_CODE,
    ManagedProcess,
    ProcessSpec,
    stop_watching_pidfd,
)

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
FORMAT = 1
# Writes are coalesced: a burst of `set` commands costs one write.
FLUSH_DELAY_SECONDS = 0.05


def process_start_ticks(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            stat = stat_file.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses.
    fields = stat[stat.rindex(b")") + 2 :].split()
    if fields[0] == b"Z":
        return None
    return int(fields[19])


class StateDirectory:
    """Reads and (debounced) writes the kernel's ``state.json``."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        self.file = os.path.join(self.path, STATE_FILE)
        self._pending: asyncio.TimerHandle | None = None
        self._snapshot = None
        # One thread: writes land in the order they were taken.
        self._writer = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="papa-state"
        )
        self._writes: list[concurrent.futures.Future] = []

    def spill_path(self, name: str, pid: int) -> str:
        """Where a process's spilled output goes."""
        folder = os.path.join(self.path, "spill")
        os.makedirs(folder, mode=0o700, exist_ok=True)
        return os.path.join(folder, f"{name}.{pid}.out")

    def load(self) -> dict:
        """The saved state, or an empty one."""
        try:
            with open(self.file) as state_file:
                state = json.load(state_file)
        except FileNotFoundError:
            return {"values": {}, "sockets": [], "processes": []}
        except (OSError, ValueError) as exc:
            log.error("ignoring unreadable state file %s: %s", self.file, exc)
            return {"values": {}, "sockets": [], "processes": []}
        if state.get("format") != FORMAT:
            log.error("ignoring state file %s of unknown format", self.file)
            return {"values": {}, "sockets": [], "processes": []}
        return state

    def schedule(self, snapshot) -> None:
        """Write ``snapshot()`` soon; several calls in a row write once."""
        self._snapshot = snapshot
        if self._pending is None:
            loop = asyncio.get_running_loop()
            self._pending = loop.call_later(FLUSH_DELAY_SECONDS, self.flush, False)

    def flush(self, wait: bool = True) -> None:
        """Write now; *wait* false leaves the disk write to a worker thread.

        The snapshot is taken and encoded here, on the loop, so it is
        consistent; the file write and ``fsync`` (milliseconds, more with many
        processes) go to one worker thread, in order, so that a burst of
        ``make process`` calls is not slowed by the disk.  Shutdown waits.
        """
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        if self._snapshot is not None:
            state = dict(self._snapshot(), format=FORMAT)
            # No indent: json's C encoder; the pure-Python one took tens of
            # milliseconds per write with a few hundred processes.
            data = json.dumps(state, sort_keys=True).encode("utf-8")
            self._writes.append(self._writer.submit(self._write, data))
        self._writes = [write for write in self._writes if not write.done()]
        if wait:
            for write in self._writes:
                write.result()
            self._writes = []

    def _write(self, data: bytes) -> None:
        descriptor, temporary = tempfile.mkstemp(dir=self.path, prefix=".state.")
        try:
            with os.fdopen(descriptor, "wb") as state_file:
                state_file.write(data)
                state_file.flush()
                os.fsync(state_file.fileno())
            os.replace(temporary, self.file)
        except OSError as exc:
            log.error("cannot write state file %s: %s", self.file, exc)
            try:
                os.unlink(temporary)
            except OSError:
                pass


class AdoptedProcess(ManagedProcess):
    """A process started by an earlier kernel and still alive.

    Its end is seen through a pidfd like a child's; since it is not our
    child its exit code is unknown.
    """

    kind = "adopted"

    def __init__(self, spec: ProcessSpec, pid: int, started: float, ticks: int):
        super().__init__(spec)
        self.pid = pid
        self.started = started
        self.ticks = ticks
        self.running = True
        self.output = OutputRing(spec.bufsize)
        self._pidfd: int | None = None
        self._loop = None
        self._timer = None

    def start(self, sockets) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except OSError:
            self._timer = self._loop.call_later(1.0, self._check)
            return
        self._loop.add_reader(self._pidfd, self._check)

    def _check(self) -> None:
        if process_start_ticks(self.pid) == self.ticks:
            if self._pidfd is None:
                self._timer = self._loop.call_later(1.0, self._check)
            return
        self._release()
        self._exited(UNKNOWN_EXIT_CODE)

    def _release(self) -> None:
        if self._pidfd is not None:
            stop_watching_pidfd(self._loop, self._pidfd)
            self._pidfd = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        self._release()
        super().close()


def adopt(record: dict) -> AdoptedProcess | None:
    """An AdoptedProcess for a saved record, if that very process still runs."""
    pid = record.get("pid")
    ticks = process_start_ticks(pid) if pid else None
    if ticks is None or ticks != record.get("ticks"):
        return None
    spec = ProcessSpec(**record["spec"])
    return AdoptedProcess(spec, pid, record["started"], ticks)
