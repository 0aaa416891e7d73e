"""The real one-node Slurm test cluster (``make slurm-up``) and papa kernels
whose Slurm jobs are cancelled when they stop."""

from __future__ import annotations

import os
import subprocess

import pytest

import papa
from papa.slurm import tools

from .kernels import KernelProcess


def sinfo_answer() -> str | None:
    """Why the test cluster cannot be used, or None when it answers."""
    try:
        partitions = tools.partition_names()
    except tools.SlurmCommandError as error:
        return f"no Slurm cluster answers ({error}); make slurm-up starts it"
    if "debug*" not in partitions or "long" not in partitions:
        return f"not the test cluster (partitions {partitions}); run make slurm-up"
    return None


def require_cluster() -> None:
    """Skip (or fail, with ZEOPAPA_REQUIRE_SLURM set) without the cluster."""
    reason = sinfo_answer()
    if reason is not None:
        if os.environ.get("ZEOPAPA_REQUIRE_SLURM"):
            pytest.fail(f"ZEOPAPA_REQUIRE_SLURM is set but {reason}")
        pytest.skip(reason)


class SlurmKernel(KernelProcess):
    """Our kernel with a state dir; its Slurm jobs are cancelled at the end."""

    def job_ids(self) -> list[int]:
        with papa.Papa(self.port_or_path, connection_timeout=30) as client:
            listed = client.list_processes()
        return [info["slurm_job"] for info in listed.values() if "slurm_job" in info]

    def stop(self, kill_children: bool = False) -> None:
        # Listed pids of Slurm jobs are 0: never kill "children" here.
        jobs = []
        if self.process is not None and self.process.poll() is None:
            jobs = self.job_ids()
        for job_id in jobs:
            subprocess.run(["scancel", str(job_id)], capture_output=True)
        super().stop(kill_children=False)
