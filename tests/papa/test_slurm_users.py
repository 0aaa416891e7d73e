"""Slurm jobs run as another user (``uid=``), on the real test cluster: a
kernel running as root submits with ``sbatch --uid/--gid``, as a JupyterHub
spawner submits each user's server as that user."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from pathlib import Path

import pytest

import papa
from papa.errors import Error
from tests.papa.conftest import read_all, wait_for
from tests.support.slurm import SlurmKernel, require_cluster

pytestmark = pytest.mark.slurm

JOB_DEADLINE = 90
USER = "nobody"


@pytest.fixture
def searchable(tmp_path):
    """A folder every user may pass through, as a site's state dir would be
    (pytest's own temporary folders are private to root)."""
    require_cluster()
    if os.geteuid() != 0:
        pytest.skip("sbatch --uid needs root")
    folder = Path(tempfile.mkdtemp(prefix="papa-users-"))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_job_runs_as_the_user_it_names(searchable, tmp_path):
    state = searchable / "state"
    state.mkdir()
    state.chmod(0o711)
    kernel = SlurmKernel(tmp_path, state_dir=state).start()
    try:
        with papa.Papa(kernel.port_or_path, connection_timeout=JOB_DEADLINE) as client:
            client.make_process(
                "as-nobody",
                "/bin/sh",
                ["-c", "id -un; exit 4"],
                uid=USER,
                slurm={"partition": "debug"},
            )
            wait_for(
                lambda: not client.list_processes("as-nobody")["as-nobody"]["running"],
                timeout=JOB_DEADLINE,
                message="the job to end",
            )
            # The folder is the user's (it goes once the output is read).
            owners = [folder.stat().st_uid for folder in (state / "slurm").iterdir()]
            out, _, closed = read_all(client.watch_processes("as-nobody"))
    finally:
        kernel.stop()
    assert owners == [pwd.getpwnam(USER).pw_uid]
    assert out == f"{USER}\n".encode()
    assert closed == {"as-nobody": 4}


def test_a_folder_the_user_cannot_reach_is_refused_before_sbatch(tmp_path):
    require_cluster()
    if os.geteuid() != 0:
        pytest.skip("sbatch --uid needs root")
    state = tmp_path / "private-state"  # 0700, as papa makes it
    kernel = SlurmKernel(tmp_path, state_dir=state).start()
    try:
        with papa.Papa(kernel.port_or_path, connection_timeout=JOB_DEADLINE) as client:
            with pytest.raises(Error, match="not searchable by others"):
                client.make_process(
                    "unreachable", "/bin/true", uid=USER, slurm={"partition": "debug"}
                )
            assert "unreachable" not in client.list_processes()
    finally:
        kernel.stop()
    assert list((state / "slurm").iterdir()) == []
