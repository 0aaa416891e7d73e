"""A Slurm job as a papa process.

:class:`SlurmJob` submits the batch script with ``sbatch`` and then, on the
kernel's loop, learns the job's state from the kernel's
:class:`~papa.slurm.poller.JobPoller` (one ``squeue`` for all jobs, in a
worker thread so the loop never waits) and tails its output files into the
:class:`~papa.output.OutputRing`, so watchers see it like a local child's.

The job's folder (``<state-dir>/slurm/<name>-<time>``, or a temporary one
without a state dir) holds the script, ``out*.txt``/``err*.txt`` and the
``exit-status`` file(s) the script writes.  The end is decided only from a
real answer: a terminal state, or "Invalid job id" (purged) from the
controller (an id a successful ``squeue`` omitted is confirmed by the
exit-status file or ``scontrol`` first).  A failed query ("Unable to contact slurm controller") only sets
the reason and polling goes on, so a controller restart never looks like a
job that went away.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable

from ..errors import Error
from ..output import STDERR, STDOUT, OutputRing
from ..process import UNKNOWN_EXIT_CODE, ManagedProcess, ProcessSpec
from ..tail import FileTail
from . import script, tools
from .partitions import SlurmSettings
from .poller import JobPoller

log = logging.getLogger(__name__)

_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SlurmJob(ManagedProcess):
    """One batch job (or job array) submitted for a ``make process``."""

    kind = "slurm"
    # An ended job stays in the state file until its end was delivered.
    kept_when_ended = True

    def __init__(
        self,
        spec: ProcessSpec,
        settings: SlurmSettings,
        jobs_dir: str | None,
        poller: JobPoller,
    ):
        super().__init__(spec)
        self.settings = settings
        self.poller = poller
        self.jobs_dir = jobs_dir
        self.job_id = 0
        self.folder = ""
        self.partition = ""
        self.nodelist = ""  # where Slurm runs it, as squeue names them (%N)
        self.state = "SUBMITTING"
        self.state_since = time.monotonic()
        self.reason = ""
        self.keep_output = False
        # Output file name -> bytes of it watchers acknowledged (papa.tail).
        self.acknowledged: dict[str, int] = {}
        self.output = OutputRing(spec.bufsize) if spec.bufsize else None
        # The kernel's "remember the acknowledged offsets".
        self.on_progress: Callable[[], None] | None = None
        self._tail: FileTail | None = None
        self._ended: asyncio.Event | None = None

    # -- submission ---------------------------------------------------------------
    def start(self, sockets) -> None:
        """Check the request, write the folder and script, and run sbatch."""
        spec = self.spec
        request = self.settings.check(spec.slurm or {})
        for key in spec.env:
            if not _VARIABLE.match(key):
                raise Error(
                    f"environment variable name {key!r} is not valid in a shell"
                )
        as_user = spec.uid is not None or spec.gid is not None
        if as_user and os.geteuid() != 0:
            raise Error(
                "uid and gid of a Slurm job need a kernel running as root "
                "(sbatch --uid/--gid are for root only)"
            )
        self.partition = request.partition or ""
        self.keep_output = request.keep_output
        self.folder = self._new_folder()
        if as_user:
            _reachable_by_others(self.folder)
        suffix = "-%a" if request.array else ""
        text = script.render(
            spec.name,
            self.folder,
            spec.args,
            spec.shell,
            spec.env,
            request.directives,
            request.extra_options,
            request.prologue,
        )
        script_path = os.path.join(self.folder, "job.sh")
        with open(script_path, "w") as script_file:
            script_file.write(text)
        if as_user:
            # The job writes its output and exit status here as that user.
            for path in (self.folder, script_path):
                os.chown(
                    path,
                    -1 if spec.uid is None else spec.uid,
                    -1 if spec.gid is None else spec.gid,
                )
        arguments = [
            f"--job-name={spec.name}",
            f"--chdir={spec.working_dir or self.folder}",
            f"--output={self.folder}/out{suffix}.txt",
            f"--error={self.folder}/err{suffix}.txt",
            *request.extra_options,
        ]
        if spec.uid is not None:
            arguments.append(f"--uid={spec.uid}")
        if spec.gid is not None:
            arguments.append(f"--gid={spec.gid}")
        if not spec.stdout and spec.stderr != "1":
            arguments[2] = "--output=/dev/null"
        if spec.stderr == "stdout":
            arguments[3] = f"--error={self.folder}/out{suffix}.txt"
        try:
            self.job_id = tools.submit(arguments, text)
        except Error:
            self._remove_folder()
            raise
        with open(os.path.join(self.folder, "job-id"), "w") as id_file:
            id_file.write(f"{self.job_id}\n")
        self.started = time.time()
        self.running = True
        self._set_state("PENDING")
        log.info("process %s submitted as Slurm job %s", spec.name, self.job_id)
        self._watch()

    def _new_folder(self) -> str:
        if self.jobs_dir is None:
            return tempfile.mkdtemp(prefix=f"papa-slurm-{self.spec.name}-")
        # Searchable by all, listable by none: a job run as another user
        # (uid=) reaches its own folder, which is 0700 and that user's.
        os.makedirs(self.jobs_dir, mode=0o711, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        return tempfile.mkdtemp(prefix=f"{self.spec.name}-{stamp}-", dir=self.jobs_dir)

    def _watch(self) -> None:
        self._ended = asyncio.Event()
        self.poller.register(self)

    # -- what the poller tells ----------------------------------------------------
    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_since = time.monotonic()

    def query_failed(self, exc: tools.SlurmCommandError) -> None:
        """squeue/scontrol did not answer: nothing is known, polling goes on."""
        self.reason = f"state unknown: {exc.text}"
        log.warning("job %s of %s: %s", self.job_id, self.name, exc)
        self._read_output()

    def has_status_file(self) -> bool:
        """The script wrote its exit status (a plain job, not an array)."""
        if (self.spec.slurm or {}).get("array"):
            return False  # some tasks may have ended while others run
        return os.path.exists(os.path.join(self.folder, script.STATUS_FILE))

    async def update(self, rows) -> None:
        """New rows from the poller, or None: Slurm no longer knows the job."""
        if not self.running:
            return
        self._read_output()
        if rows is not None:
            self._update(rows)
            if not all(state in tools.TERMINAL_STATES for _, state, _, _ in rows):
                return
        await self._finish(rows)

    def _update(self, rows) -> None:
        states = [state for _, state, _, _ in rows]
        # Where it runs (a requeued job's list is empty until it starts
        # again: the last known nodes stay).
        nodes = ",".join(sorted({n for _, _, _, n in rows if n}))
        self.nodelist = nodes or self.nodelist
        # The least advanced task tells where the job is.
        for state in ("RUNNING", "COMPLETING", "CONFIGURING", "PENDING", "SUSPENDED"):
            if state in states:
                self._set_state(state)
                break
        else:
            failed = [state for state in states if state != "COMPLETED"]
            self._set_state(failed[0] if failed else "COMPLETED")
        self.reason = next((reason for _, _, reason, _ in rows if reason != "None"), "")

    async def _finish(self, rows) -> None:
        self.poller.unregister(self)
        codes = self._status_files()
        missing = rows is not None and len(codes) < len(rows)
        if missing or not codes:
            # The script did not write its status (cancelled, timed out, killed,
            # or it never started): ask scontrol while it still knows the job.
            try:
                slurm_codes = await self.poller.call(tools.job_exit_codes, self.job_id)
            except tools.SlurmCommandError as exc:
                log.info("no exit code from scontrol for job %s: %s", self.job_id, exc)
                slurm_codes = {}
            for task, code in slurm_codes.items():
                codes.setdefault(task, code)
        if rows is None and not codes:
            # Purged without a status file (it ended while no kernel watched,
            # cancelled or timed out): the job completion log still knows.
            records = await self.poller.call(tools.jobcomp_records, self.job_id)
            if records:
                states = [state for state, _ in records.values()]
                failed = [state for state in states if state != "COMPLETED"]
                self._set_state(failed[0] if failed else "COMPLETED")
                codes = {task: code for task, (_, code) in records.items()}
        if not self.running:
            return  # closed meanwhile
        if rows is None and self.state not in tools.TERMINAL_STATES:
            self._set_state(
                "COMPLETED" if codes and not any(codes.values()) else "ENDED"
            )
        written = bool(self._status_files())
        exit_code = _combined(list(codes.values()))
        if not written and exit_code == 0 and self.state != "COMPLETED":
            # Slurm reports 0:0 for a job cancelled while pending (and its
            # jobcomp log for a timeout): not a success.  SIGTERM is what
            # ended it, or would have.
            exit_code = (
                -15 if self.state in ("CANCELLED", "TIMEOUT") else UNKNOWN_EXIT_CODE
            )
        self.reason = self.reason if self.state != "COMPLETED" else ""
        # Known now (listed, and what cancel answers); the job stays running
        # and its closed record waits until the last byte of output is read,
        # which may take watchers acknowledging (nothing is dropped).
        self.exit_code = exit_code
        if self._ended is not None:
            self._ended.set()
        self._read_output()
        if self._tail is not None:
            self._tail.when_drained(lambda: self._ended_with(exit_code))
        else:
            self._ended_with(exit_code)

    def _ended_with(self, exit_code: int) -> None:
        if self.running:  # not closed meanwhile
            self._exited(exit_code)

    def _status_files(self) -> dict[str, int]:
        codes = {}
        base = os.path.join(self.folder, script.STATUS_FILE)
        for path in glob.glob(base) + glob.glob(base + "-*"):
            if path.endswith(".tmp"):
                continue
            try:
                with open(path) as status_file:
                    codes[os.path.basename(path)] = int(status_file.read().strip())
            except (OSError, ValueError):
                continue
        return codes

    def _read_output(self) -> None:
        """Tail the job's output files (new ones of an array too) into the ring."""
        if self.output is None or not self.folder:
            return
        if self._tail is None:
            self._tail = FileTail(self.output, self.acknowledged, self._progressed)
        for kind, pattern in ((STDOUT, "out*.txt"), (STDERR, "err*.txt")):
            for path in sorted(glob.glob(os.path.join(self.folder, pattern))):
                self._tail.add(os.path.basename(path), kind, path)
        self._tail.poke()

    def _progressed(self) -> None:
        if self.on_progress is not None:
            self.on_progress()

    # -- cancelling ---------------------------------------------------------------
    async def cancel(self, timeout: float) -> None:
        """scancel, then wait until Slurm confirms the end (or time runs out)."""
        if not self.running:
            return
        await asyncio.get_running_loop().run_in_executor(
            None, tools.cancel, self.job_id
        )
        self.poller.wake()
        try:
            await asyncio.wait_for(self._ended.wait(), timeout)
        except TimeoutError:
            raise Error(
                f"job {self.job_id} of {self.name} was cancelled but has not "
                f"ended after {timeout:g} s (state {self.state})"
            )

    # -- listing and state --------------------------------------------------------
    def line(self, quote=str) -> str:
        fields = [
            quote(self.name),
            # pid=0: a job has no local pid, and its id must never be
            # mistaken for one (a client killing "pid 5" would hit a stranger).
            "pid=0",
            f"running={self.running}",
            f"started={self.started!r}",
            f"slurm_job={self.job_id}",
            f"partition={quote(self.partition or '-')}",
            f"state={self.state}",
            f"nodelist={quote(self.nodelist or '-')}",
            f"reason={quote(self.reason.replace(' ', '_') or '-')}",
        ]
        if self.exit_code is not None:
            fields.append(f"exit_code={self.exit_code}")
        fields.extend(self.command_fields(quote))
        return " ".join(fields)

    def to_state(self) -> dict:
        return dict(
            super().to_state(),
            kind=self.kind,
            job_id=self.job_id,
            folder=self.folder,
            partition=self.partition,
            nodelist=self.nodelist,
            keep_output=self.keep_output,
            acknowledged=dict(self.acknowledged),
        )

    @classmethod
    def adopt(
        cls, record: dict, settings: SlurmSettings, jobs_dir, poller: JobPoller
    ) -> SlurmJob:
        """The job of a saved record, tracked again (it may have ended since)."""
        job = cls(ProcessSpec(**record["spec"]), settings, jobs_dir, poller)
        job.job_id = record["job_id"]
        job.folder = record["folder"]
        job.partition = record.get("partition", "")
        job.nodelist = record.get("nodelist", "")
        job.keep_output = record.get("keep_output", False)
        # "offsets" (older kernels) were bytes read, not acknowledged.
        job.acknowledged = dict(record.get("acknowledged", record.get("offsets", {})))
        job.started = record["started"]
        job.running = True
        job.state = "ADOPTED"
        return job

    def resume(self) -> None:
        """Start polling an adopted job."""
        self._watch()

    def close(self) -> None:
        """Stop polling (kernel shutdown or forgotten); the job keeps running."""
        self.poller.unregister(self)
        if self._tail is not None:
            self._tail.close()
            self._tail = None
        if not self.running and not self.keep_output and self.jobs_dir is None:
            # Without a state directory no later kernel delivers the rest.
            self._remove_folder()
        super().close()

    def forgotten(self) -> None:
        """Its end was delivered: its folder goes (unless output was kept)."""
        if not self.keep_output:
            self._remove_folder()

    def _remove_folder(self) -> None:
        if (
            self.folder
            and self.jobs_dir is None
            or (self.folder and self.jobs_dir and self.folder.startswith(self.jobs_dir))
        ):
            shutil.rmtree(self.folder, ignore_errors=True)


def _reachable_by_others(folder: str) -> None:
    """Refuse a job run as another user that could not reach its folder."""
    parent = os.path.dirname(folder)
    while parent != os.path.dirname(parent):
        if not os.stat(parent).st_mode & 0o001:
            os.rmdir(folder)
            raise Error(
                f"a job run as another user (uid=) cannot reach its folder: {parent} "
                "is not searchable by others (chmod o+x it, e.g. chmod 711 on the "
                "kernel's state directory)"
            )
        parent = os.path.dirname(parent)


def _combined(codes: list[int]) -> int:
    """One exit code for a job or array: the first failure, else 0."""
    if not codes:
        return UNKNOWN_EXIT_CODE
    failures = [code for code in codes if code != 0]
    return failures[0] if failures else 0
