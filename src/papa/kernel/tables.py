"""The kernel's state: its named values, sockets and processes.

:class:`Tables` holds the three tables and every operation the commands
perform on them, and keeps the state directory up to date (what a restarted
kernel re-adopts).  No I/O with clients happens here: the listener and the
sessions (:mod:`papa.kernel.listener`, :mod:`papa.session`) do that, and the
handlers (:mod:`papa.commands`) call these methods.

Everything runs on the kernel's one event loop, one handler at a time, so
the tables are consistent without a lock.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import tempfile
import time
from typing import TYPE_CHECKING, Any, cast

from ..errors import Error
from ..local import LocalProcess
from ..patterns import match
from ..process import ManagedProcess, ProcessSpec, check_name, split_options
from ..sockets import ManagedSocket, SocketSpec
from ..state import StateDirectory, adopt
from ..waited import WaitedProcess
from .slurmjobs import SlurmJobs

if TYPE_CHECKING:
    from ..slurm import SlurmSettings
    from ..slurm.job import SlurmJob
    from ..slurm.partitions import SbatchRequest

log = logging.getLogger(__name__)

# A local child gets this long after SIGTERM before SIGKILL; a Slurm job three
# times that (Slurm's own KillWait between its TERM and KILL is 30 s by default
# but the whole cancel is usually over in about a second).
CANCEL_GRACE_SECONDS = 10


class Tables:
    """Named values, sockets and processes, and what commands do to them."""

    def __init__(
        self,
        state_dir: str | None = None,
        slurm_settings: SlurmSettings | None = None,
    ):
        self.values: dict[str, str] = {}
        self.sockets: dict[str, ManagedSocket] = {}
        self.processes: dict[str, ManagedProcess] = {}
        self.state = StateDirectory(state_dir) if state_dir else None
        self.slurm_jobs = SlurmJobs(
            slurm_settings,
            os.path.join(self.state.path, "slurm") if self.state else None,
        )

    def is_idle(self) -> bool:
        """No process (even finished), no socket, no value: papa's rule."""
        return not (self.processes or self.sockets or self.values)

    def close(self) -> None:
        """Write the state directory, release pipes and sockets (kernel stop).

        Children keep running: papa never stops its processes.
        """
        if self.state is not None:
            self.state.flush()
        for process in self.processes.values():
            process.close()
        self.slurm_jobs.close()
        for managed in self.sockets.values():
            managed.close()

    # -- state directory ---------------------------------------------------------
    def changed(self) -> None:
        """Note a change worth remembering across restarts."""
        if self.state is not None:
            self.state.schedule(self.snapshot)

    def snapshot(self) -> dict[str, Any]:
        return {
            "values": dict(self.values),
            "sockets": [
                dict(
                    managed.spec.to_state(),
                    fileno=managed.socket.fileno() if managed.socket else None,
                )
                for managed in self.sockets.values()
            ],
            "processes": [
                process.to_state()
                for process in self.processes.values()
                if process.running or process.kept_when_ended
            ],
        }

    def restore(self) -> None:
        """Take back what the state directory remembers (kernel start)."""
        if self.state is None:
            return
        saved = self.state.load()
        self.values.update(saved.get("values", {}))
        for record in saved.get("processes", []):
            if record.get("kind") == "slurm":
                self._adopt_job(record)
                continue
            if "exit_path" in record:
                self._adopt_waited(record)
                continue
            process = adopt(record)
            if process is None:
                log.info(
                    "process %s from the state file has ended", record["spec"]["name"]
                )
                continue
            process.on_finished = self._process_finished
            process.start(self.sockets)
            self.processes[process.name] = process
            log.info("adopted %s", process.line())
        adopted = [process.pid for process in self.processes.values() if process.pid]
        for record in saved.get("sockets", []):
            record = dict(record)
            fileno = record.pop("fileno", None)
            spec = SocketSpec(**record)
            managed = ManagedSocket(spec)
            # Children that inherited the socket still hold it: take it back
            # from them first, so the port or path stays the very same socket.
            if fileno is None or not managed.recover(adopted, fileno):
                try:
                    managed.open()
                except Error as exc:
                    log.error("cannot restore socket %s: %s", spec.name, exc)
                    continue
            self.sockets[spec.name] = managed
        self.changed()

    def _adopt_waited(self, record: dict[str, Any]) -> None:
        assert self.state is not None
        try:
            waited = WaitedProcess.adopt(record, self.state.children_path())
        except (KeyError, TypeError) as exc:
            log.error("cannot re-adopt a child from the state file: %r", exc)
            return
        waited.on_finished = self._process_finished
        waited.on_progress = functools.partial(self._acknowledged, waited)
        waited.resume()
        self.processes[waited.name] = waited
        log.info("re-adopted %s (running=%s)", waited.name, waited.running)

    def _adopt_job(self, record: dict[str, Any]) -> None:
        job = self.slurm_jobs.adopt(record)
        if job is None:
            return
        job.on_finished = self._process_finished
        job.on_progress = functools.partial(self._acknowledged, job)
        job.resume()
        self.processes[job.name] = job
        log.info("re-adopted Slurm job %s as %s", job.job_id, job.name)

    # -- values --------------------------------------------------------------------
    def set_value(self, name: str, value: str | None) -> None:
        if value is None:
            self.values.pop(name, None)
        else:
            self.values[name] = value
        if self.state is not None:
            self.state.record({"set": name, "value": value})
            self.state.schedule(self.snapshot)

    def remove_values(self, patterns: list[str]) -> None:
        if not patterns or "*" in patterns:
            raise Error("You cannot remove all variables")
        names = match(self.values, patterns)
        for name in names:
            del self.values[name]
        if self.state is not None and names:
            self.state.record({"remove": names})
        self.changed()

    # -- sockets -------------------------------------------------------------------
    def make_socket(self, words: list[str]) -> ManagedSocket:
        if not words:
            raise Error("Socket requires a name")
        name = words[0]
        check_name(name, "Socket")
        options, rest = split_options(words[1:])
        if rest:
            raise Error(f"Unexpected words after the socket options: {' '.join(rest)}")
        spec = SocketSpec.from_options(name, options)
        existing = self.sockets.get(name)
        if existing is not None:
            if existing.spec.same_request(spec):
                return existing
            raise Error(
                f"Socket for {name} has already been created - {existing.line()}"
            )
        if spec.path and any(s.spec.path == spec.path for s in self.sockets.values()):
            raise Error(f"Socket for {spec.path} has already been created")
        managed = ManagedSocket(spec)
        managed.open()
        self.sockets[name] = managed
        self.changed()
        return managed

    def remove_sockets(self, patterns: list[str]) -> None:
        for name in match(self.sockets, patterns, required=True):
            self.sockets.pop(name).close()
        self.changed()

    # -- processes -----------------------------------------------------------------
    def make_process(self, words: list[str]) -> tuple[ManagedProcess, bool]:
        """Start a process (or return the same one again); also the watch flag."""
        spec, watch = ProcessSpec.from_words(words)
        existing = self.processes.get(spec.name)
        if existing is not None:
            if existing.spec.same_request(spec):
                return existing, watch
            raise Error(
                f"Process for {spec.name} has already been created - {existing.line()}"
            )
        process: ManagedProcess
        if spec.slurm is not None:
            job = self.slurm_jobs.new_job(spec)
            job.on_progress = functools.partial(self._acknowledged, job)
            process = job
        elif self.state is not None:
            # Started through a waiting parent: exit code and spilled output
            # survive a kernel killed with SIGKILL (papa.waited).
            waited = WaitedProcess(spec, self.state.children_path())
            waited.on_progress = functools.partial(self._acknowledged, waited)
            process = waited
        else:
            spill_path = self._spill_path(spec.name) if spec.spill else None
            process = LocalProcess(spec, spill_path)
        process.on_finished = self._process_finished
        process.start(self.sockets)
        self.processes[spec.name] = process
        if self.state is not None:
            # Before the reply: a kernel killed now still re-adopts it.
            self.state.record({"process": process.to_state()})
        self.changed()
        return process, watch

    def slurm(self) -> SlurmSettings:
        """The Slurm settings (partitions from the config, else all of sinfo's)."""
        return self.slurm_jobs.slurm()

    def list_partitions(self) -> list[dict[str, Any]]:
        return self.slurm_jobs.partitions()

    def check_slurm(self, request: dict[str, str]) -> SbatchRequest:
        """What ``make process`` would submit for *request* (or its error)."""
        return self.slurm_jobs.slurm().check(request)

    async def cancel_processes(self, patterns: list[str]) -> list[str]:
        """End processes: scancel a job, SIGTERM then SIGKILL a local child.

        Returns one line per process with how it ended; raises Error (after
        trying every one) when one did not end in time.
        """
        if not patterns:
            raise Error("cancel processes needs at least one name or pattern")
        names = match(self.processes, patterns, required=True)
        results = await asyncio.gather(
            *(self._cancel(self.processes[name]) for name in names),
            return_exceptions=True,
        )
        lines, failures = [], []
        for name, result in zip(names, results, strict=True):
            if isinstance(result, Error):
                failures.append(str(result))
            elif isinstance(result, BaseException):
                raise result
            else:
                lines.append(f"{name} exit_code={self.processes[name].exit_code}")
        if failures:
            raise Error("; ".join(failures))
        return lines

    async def _cancel(self, process: ManagedProcess) -> None:
        if not process.running:
            return
        if process.kind == "slurm":
            await cast("SlurmJob", process).cancel(CANCEL_GRACE_SECONDS * 3)
            return
        for signal_number, grace in (
            (signal.SIGTERM, CANCEL_GRACE_SECONDS),
            (signal.SIGKILL, CANCEL_GRACE_SECONDS),
        ):
            try:
                os.kill(process.pid, signal_number)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + grace
            while process.running and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if not process.running:
                return
        raise Error(f"{process.name} (pid {process.pid}) did not end after SIGKILL")

    def _spill_path(self, name: str) -> str:
        if self.state is not None:
            return self.state.spill_path(name, os.getpid())
        descriptor, path = tempfile.mkstemp(prefix=f"papa-spill-{name}-")
        os.close(descriptor)
        return path

    def remove_processes(self, patterns: list[str]) -> None:
        for name in match(self.processes, patterns, required=True):
            process = self.processes[name]
            process.remove()
            if not process.running:
                self.forget_process(process)
        self.changed()

    def forget_process(self, process: ManagedProcess) -> None:
        """Drop a finished process's entry (its closed record was consumed)."""
        if self.processes.get(process.name) is process:
            del self.processes[process.name]
            process.close()
            process.forgotten()
            if self.state is not None:
                self.state.record({"forget": process.name})
            self.changed()

    def _acknowledged(self, process: WaitedProcess | SlurmJob) -> None:
        """Watchers acknowledged more of its output files: journal how far,
        before the next batch goes out (a restart resumes from there)."""
        if self.state is not None:
            self.state.record(
                {"acknowledged": process.name, "offsets": dict(process.acknowledged)}
            )
        self.changed()

    def _process_finished(self, process: ManagedProcess) -> None:
        if process.removed:
            self.forget_process(process)
        else:
            self.changed()
