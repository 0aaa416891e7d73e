"""The state directory: what a restarted kernel remembers.

papa 1.0.6 keeps everything in memory, so a restarted kernel forgets its
values, sockets and children.  With ``--state-dir`` the kernel writes
``state.json`` (values, socket specs, the processes it started with their
pid and start time) shortly after every change, atomically, and reads it at
start: values come back, sockets are bound again (on the same port when it
is free) and processes still alive are listed again as *adopted*.

Acknowledged changes survive a SIGKILL of the kernel: before a change is
answered (and, for how far a watcher acknowledged an output file, before
the next batch is sent) it is appended to ``journal.N`` (one JSON line, one
``write(2)``: once the system call returns the bytes are the operating
system's, so a killed process loses nothing; there is no ``fsync``, so a
power loss may lose the changes since the last snapshot, which is fsynced).  The debounced
snapshot compacts the journal: taking it starts ``journal.N+1`` and once the
new ``state.json`` (which names N+1) is in place the older journals go.  At
start the snapshot is read and every journal from the one it names on is
replayed; a torn last line (killed mid-write) is skipped.

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
import re
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
JOURNAL_PREFIX = "journal."
_JOURNAL_NAME = re.compile(r"^journal\.(\d+)$")
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
        self._journal_number = 0
        self._journal_fd: int | None = None

    def spill_path(self, name: str, pid: int) -> str:
        """Where a process's spilled output goes."""
        folder = os.path.join(self.path, "spill")
        os.makedirs(folder, mode=0o700, exist_ok=True)
        return os.path.join(folder, f"{name}.{pid}.out")

    def children_path(self) -> str:
        """Where children's exit codes and output files go (papa.waited)."""
        folder = os.path.join(self.path, "children")
        os.makedirs(folder, mode=0o700, exist_ok=True)
        return folder

    def load(self) -> dict:
        """The saved state with its journals replayed, or an empty one."""
        state = self._load_snapshot()
        first = state.get("journal", 0)
        numbers = self._journal_numbers()
        for number in numbers:
            if number >= first:
                self._replay(state, number)
        # New lines never go to a journal an older kernel left behind.
        self._journal_number = max([first, *numbers]) + 1
        return state

    def _load_snapshot(self) -> dict:
        empty: dict = {"values": {}, "sockets": [], "processes": []}
        try:
            with open(self.file) as state_file:
                state = json.load(state_file)
        except FileNotFoundError:
            return empty
        except (OSError, ValueError) as exc:
            log.error("ignoring unreadable state file %s: %s", self.file, exc)
            return empty
        if state.get("format") != FORMAT:
            log.error("ignoring state file %s of unknown format", self.file)
            return empty
        return state

    def _journal_numbers(self) -> list[int]:
        numbers = []
        for entry in os.listdir(self.path):
            found = _JOURNAL_NAME.match(entry)
            if found:
                numbers.append(int(found.group(1)))
        return sorted(numbers)

    def _replay(self, state: dict, number: int) -> None:
        path = os.path.join(self.path, f"{JOURNAL_PREFIX}{number}")
        try:
            with open(path, "rb") as journal:
                lines = journal.read().split(b"\n")
        except OSError as exc:
            log.error("cannot read journal %s: %s", path, exc)
            return
        values = state.setdefault("values", {})
        processes = {
            record["spec"]["name"]: record for record in state.get("processes", [])
        }
        for line in lines:
            if not line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                log.warning("skipping a torn line of journal %s", path)
                continue
            if "set" in entry:
                if entry.get("value") is None:
                    values.pop(entry["set"], None)
                else:
                    values[entry["set"]] = entry["value"]
            elif "remove" in entry:
                for name in entry["remove"]:
                    values.pop(name, None)
            elif "process" in entry:
                record = entry["process"]
                processes[record["spec"]["name"]] = record
            elif "forget" in entry:
                processes.pop(entry["forget"], None)
            elif "acknowledged" in entry:
                acknowledged = processes.get(entry["acknowledged"])
                if acknowledged is not None:
                    acknowledged["acknowledged"] = entry["offsets"]
        state["processes"] = list(processes.values())

    def record(self, entry: dict) -> None:
        """Append one change to the journal before it is acknowledged.

        One ``write(2)`` of one line: a SIGKILL right after it loses nothing.
        """
        if self._journal_fd is None:
            path = os.path.join(self.path, f"{JOURNAL_PREFIX}{self._journal_number}")
            self._journal_fd = os.open(
                path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600
            )
        line = json.dumps(entry, separators=(",", ":")).encode("utf-8") + b"\n"
        try:
            os.write(self._journal_fd, line)
        except OSError as exc:
            log.error("cannot append to the journal in %s: %s", self.path, exc)

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
            # The snapshot holds every journal line so far: later ones go to
            # the next journal, which the new state file names.
            if self._journal_fd is not None:
                os.close(self._journal_fd)
                self._journal_fd = None
            self._journal_number += 1
            state = dict(self._snapshot(), format=FORMAT, journal=self._journal_number)
            # No indent: json's C encoder; the pure-Python one took tens of
            # milliseconds per write with a few hundred processes.
            data = json.dumps(state, sort_keys=True).encode("utf-8")
            self._writes.append(
                self._writer.submit(self._write, data, self._journal_number)
            )
        self._writes = [write for write in self._writes if not write.done()]
        if wait:
            for write in self._writes:
                write.result()
            self._writes = []

    def _write(self, data: bytes, journal_number: int) -> None:
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
            return
        for number in self._journal_numbers():
            if number < journal_number:
                try:
                    os.unlink(os.path.join(self.path, f"{JOURNAL_PREFIX}{number}"))
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
