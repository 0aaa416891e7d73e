"""The kernel's Slurm side: settings, the one squeue poller, jobs made and re-adopted.

A Slurm job is a third kind of process (:class:`papa.slurm.job.SlurmJob`);
the kernel's tables hold it like a local child.  What only jobs need lives
here: the partitions (from the configuration, else all of sinfo's), one
:class:`~papa.slurm.poller.JobPoller` for every job of the kernel, and the
folder of each job's files under the state directory.  ``papa.slurm`` (and
Jinja2) are imported on first use, so a kernel that never runs a job never
loads them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..process import ProcessSpec
    from ..slurm import SlurmSettings
    from ..slurm.job import SlurmJob
    from ..slurm.poller import JobPoller

log = logging.getLogger(__name__)


class SlurmJobs:
    """Makes and re-adopts the kernel's Slurm jobs."""

    def __init__(self, settings: SlurmSettings | None, jobs_dir: str | None):
        self.settings = settings
        self.poller: JobPoller | None = None  # made on first use
        # Each job's script, status and output files go below this folder
        # (None without a state directory: a temporary folder per job).
        self.jobs_dir = jobs_dir

    def slurm(self) -> SlurmSettings:
        """The Slurm settings (partitions from the config, else all of sinfo's)."""
        if self.settings is None:
            from ..slurm import SlurmSettings

            self.settings = SlurmSettings()
        return self.settings

    def _poller(self) -> JobPoller:
        if self.poller is None:
            from ..slurm.poller import JobPoller

            self.poller = JobPoller()
        return self.poller

    def new_job(self, spec: ProcessSpec) -> SlurmJob:
        """A job for ``spec``, not yet submitted."""
        from ..slurm.job import SlurmJob

        return SlurmJob(spec, self.slurm(), self.jobs_dir, self._poller())

    def adopt(self, record: dict[str, Any]) -> SlurmJob | None:
        """The job a state file record names, or None if the record is unusable."""
        from ..slurm.job import SlurmJob

        try:
            return SlurmJob.adopt(record, self.slurm(), self.jobs_dir, self._poller())
        except (KeyError, TypeError) as exc:
            log.error("cannot re-adopt Slurm job from the state file: %r", exc)
            return None

    def partitions(self) -> list[dict[str, Any]]:
        """One row per partition, for ``list partitions``."""
        return self.slurm().table()

    def close(self) -> None:
        """Stop polling squeue (the jobs themselves go on)."""
        if self.poller is not None:
            self.poller.close()
