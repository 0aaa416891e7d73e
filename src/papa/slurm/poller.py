"""One ``squeue`` for all of a kernel's Slurm jobs.

Each :class:`~papa.slurm.job.SlurmJob` registers with the kernel's
:class:`JobPoller`; one asyncio task asks ``squeue -j ID,ID,...`` about every
live job at once, in one worker thread so the event loop never waits on a
Slurm tool, and hands each job its rows.  One call costs about 10 ms whether
it names one job or two hundred, so the cost no longer grows with the number
of jobs (a poll per job every 0.25 s did not scale).

A successful ``squeue`` simply omits ids it no longer knows.  Such a job is
not taken as ended on that alone: its ``exit-status`` file, or ``scontrol
show job ID`` answering (a state) or refusing it ("Invalid job id": purged),
confirms it first.  A failed query ("Unable to contact slurm controller")
tells nothing about any job: each gets ``reason=state_unknown:...`` and
polling goes on.

The interval adapts: :data:`FAST_SECONDS` while a job is pending, just
submitted or just changed state (Slurm starts batch jobs on its 1 s tick, so
this sees the change promptly), and up to :data:`SLOW_SECONDS` when every job
has been running for a while.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time

from . import tools

log = logging.getLogger(__name__)

FAST_SECONDS = 0.25
SLOW_SECONDS = 2.0
# A job that changed state less than this long ago keeps the poller fast.
FRESH_SECONDS = 5.0
# States in which the next change is expected soon.
_EAGER_STATES = frozenset(
    {"SUBMITTING", "PENDING", "CONFIGURING", "COMPLETING", "ADOPTED", "REQUEUED"}
)


class JobPoller:
    """Polls the state of every registered job with one ``squeue`` call."""

    def __init__(self):
        self.jobs: dict[int, object] = {}
        self.queries = 0  # squeue calls made (tests and the benchmark read it)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="papa-slurm-poller"
        )
        self._task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None

    # -- registration ---------------------------------------------------------------
    def register(self, job) -> None:
        """Track ``job`` (it has a job id); polls soon."""
        self.jobs[job.job_id] = job
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())
        self.wake()

    def unregister(self, job) -> None:
        if self.jobs.get(job.job_id) is job:
            del self.jobs[job.job_id]

    def wake(self) -> None:
        """Poll now rather than after the interval (a submit or a cancel)."""
        if self._wake is not None:
            self._wake.set()

    async def call(self, function, *arguments):
        """Run a blocking Slurm tool in the poller's worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *arguments)

    def close(self) -> None:
        """Stop polling (kernel shutdown); the jobs keep running in Slurm."""
        self.jobs.clear()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- the loop -------------------------------------------------------------------
    def interval(self, now: float | None = None) -> float:
        """Seconds until the next poll, from the jobs' states and ages."""
        now = time.monotonic() if now is None else now
        youngest = None
        for job in self.jobs.values():
            if job.state in _EAGER_STATES or job.reason.startswith("state unknown"):
                return FAST_SECONDS
            age = now - job.state_since
            youngest = age if youngest is None else min(youngest, age)
        if youngest is None or youngest < FRESH_SECONDS:
            return FAST_SECONDS
        # Long-running jobs: a tenth of the youngest one's age, capped.
        return min(SLOW_SECONDS, max(FAST_SECONDS, youngest / 10))

    async def _run(self) -> None:
        while self.jobs:
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval())
            except TimeoutError:
                pass
            self._wake.clear()
            if not self.jobs:
                break
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug here must not stop the tracking of every job.
                log.exception("Slurm poll failed")

    async def poll(self) -> None:
        """One squeue for all jobs; each job gets its rows or learns it is gone."""
        jobs = dict(self.jobs)
        self.queries += 1
        try:
            rows = await self.call(tools.queue_states, sorted(jobs))
        except tools.SlurmCommandError as exc:
            if not exc.unknown_job:
                for job in jobs.values():
                    job.query_failed(exc)
                return
            rows = {}  # one id asked and Slurm no longer knows it
        missing = []
        for job_id, job in jobs.items():
            if job_id in rows:
                await job.update(rows[job_id])
            else:
                missing.append(job)
        for job in missing:
            await self._confirm_gone(job)

    async def _confirm_gone(self, job) -> None:
        """A job squeue omitted: ended for sure, or still known to scontrol?"""
        if job.has_status_file():
            await job.update(None)
            return
        try:
            rows = await self.call(tools.job_rows, job.job_id)
        except tools.SlurmCommandError as exc:
            if exc.unknown_job:
                await job.update(None)  # purged: the end is known from our files
            else:
                job.query_failed(exc)
            return
        await job.update(rows)
