"""A ``slurm`` step through dispatch on the real one-node Slurm cluster:
real runzeo, a real papa kernel, ``dispatch supervise`` running
CommandRunner instances, ``dispatch go --wait`` and ``dispatch show``.

A step that exits 0 ends done with its Slurm job id, exit code and output
in the attempt; a step whose job exits 3 is retried (a new job) and then
dead-lettered.  Skipped with the reason when no cluster answers (start it
with ``make slurm-up``), failed instead under ``ZEOPAPA_REQUIRE_SLURM=1``.
"""

import json
import os
import signal
import subprocess

import pytest

import papa
from dispatch.runtime.commandrunner import CommandRunner
from dispatch.state import model, programs
from dispatch.state.database import dispatch_state
from tests.conftest import PYTHON
from tests.dispatch.conftest import wait_until
from tests.dispatch.test_adopt import (  # noqa: F401
    PROGRAM,
    adopted,
    alive,
    claimed_by,
    cleanup,
    database,
    let_it_finish,
    program_pids,
    supervised,
    the_message,
    wait_for_state,
)
from tests.dispatch.test_broker import start
from tests.dispatch.test_commandrunner import papa_kernel  # noqa: F401
from tests.dispatch.test_programs import Follower
from tests.dispatch.test_run_cli import TIMEOUT, dispatch
from tests.papa.test_slurm_cluster import squeue_state
from tests.support.slurm import sinfo_answer

pytestmark = pytest.mark.slurm


class QuickRunner(CommandRunner):
    """Two deliveries, 0.2 s apart: the failure path in seconds."""

    max_deliveries = 2
    backoff_base = 0.2


RECIPE = {
    "description": "one Slurm step that succeeds, one that fails",
    "1": {
        "command": ["/bin/sh", "-c", "echo on $(hostname) in $SLURM_JOB_PARTITION"],
        "slurm": {"partition": "debug", "runtime": "2"},
    },
    "2": {
        "command": ["/bin/sh", "-c", "echo failing; exit 3"],
        "slurm": {"partition": "long", "runtime": "1:00"},
    },
    "start": [[1, {}], [2, {}]],
}


@pytest.fixture(scope="module")
def cluster():
    reason = sinfo_answer()
    if reason is not None:
        if os.environ.get("ZEOPAPA_REQUIRE_SLURM"):
            pytest.fail(f"ZEOPAPA_REQUIRE_SLURM is set but {reason}")
        pytest.skip(reason)


@pytest.fixture
def kernel(cluster, papa_kernel):  # noqa: F811
    """The papa kernel; step jobs still known to it are cancelled at the end."""
    yield papa_kernel
    with papa.Papa(papa_kernel) as client:
        if client.list_processes(f"{programs.PREFIX}.*"):
            client.cancel_processes(f"{programs.PREFIX}.*")


def test_slurm_steps_run_as_jobs_and_fail_like_commands(
    runzeo,
    kernel,
    database,  # noqa: F811
    tmp_path,
):
    recipe_path = tmp_path / "slurm.json"
    recipe_path.write_text(json.dumps(RECIPE))
    services = (
        "<service commandrunner>\n"
        "  service tests.dispatch.test_slurm_step:QuickRunner\n"
        "  instances 2\n</service>\n"
    )
    with supervised(runzeo, kernel, tmp_path, services):
        go = dispatch(runzeo, "go", recipe_path, "--wait", "--timeout", TIMEOUT - 5)
    assert go.returncode == 1, go.stdout + go.stderr  # the run failed
    run_id = go.stdout.splitlines()[0].split()[-1]
    assert go.stdout.splitlines()[-1] == f"run {run_id}: failed"

    with dispatch_state(database) as state:
        run = state.runs[run_id]
        assert run.status == model.FAILED
        (done,) = run.steps[1].messages(run)
        assert done.state == model.DONE
        (attempt,) = done.attempts
        assert attempt.outcome == "done" and attempt.exit_code == 0
        assert isinstance(attempt.slurm_job, int) and attempt.slurm_job > 0
        assert attempt.output_tail.startswith("on ")
        assert attempt.output_tail.endswith(" in debug")
        program = programs.program_of(attempt)
        assert (program["slurm_job"], program["pid"]) == (attempt.slurm_job, None)
        succeeded_job = attempt.slurm_job

        (dead,) = run.steps[2].messages(run)
        assert dead.state == model.DEAD
        assert [a.exit_code for a in dead.attempts] == [3, 3]
        assert [a.output_tail for a in dead.attempts] == ["failing", "failing"]
        failed_jobs = [a.slurm_job for a in dead.attempts]
        assert all(isinstance(job, int) for job in failed_jobs)
        assert len({succeeded_job, *failed_jobs}) == 3  # each delivery a new job
        assert dead.reason == (
            "dead-lettered after 2 deliveries; last: "
            "CommandFailed: command exited with status 3"
        )

    shown = dispatch(runzeo, "show", run_id)
    assert shown.returncode == 0, shown.stderr
    assert f"Slurm job {succeeded_job} (COMPLETED)" in shown.stdout
    for job in failed_jobs:
        assert f"Slurm job {job} (FAILED)" in shown.stdout
    with papa.Papa(kernel) as client:
        assert client.list_processes(f"{programs.PREFIX}.*") == {}


def waiting_job(tmp_path):
    """A recipe whose step is a Slurm job that waits for the go file."""
    pids, go = tmp_path / "pids", tmp_path / "go"
    return {
        "1": {
            "command": [PYTHON, "-c", PROGRAM, str(pids), str(go), "0"],
            "slurm": {"partition": "debug", "runtime": "2"},
        },
        "start": [[1, {}]],
    }


def slurm_job_of(state, run_id):
    return the_message(state, run_id).attempts[-1].slurm_job


def test_a_slurm_job_outlives_a_killed_runner_and_is_adopted(
    runzeo,
    kernel,
    database,  # noqa: F811
    tmp_path,
    cleanup,  # noqa: F811
):
    with supervised(runzeo, kernel, tmp_path):
        run_id = start(database, waiting_job(tmp_path), now=None)
        runner = wait_for_state(database, claimed_by(run_id), what="the job")
        with dispatch_state(database) as state:
            job = slurm_job_of(state, run_id)
        (job_pid,) = wait_until(lambda: program_pids(tmp_path), timeout=TIMEOUT)
        os.kill(runner, signal.SIGKILL)

        wait_for_state(database, adopted(run_id), what="a new runner to adopt the job")
        let_it_finish(database, tmp_path, run_id)
    assert program_pids(tmp_path) == [job_pid]  # one job, one program, ever
    with dispatch_state(database) as state:
        assert state.runs[run_id].status == model.SUCCEEDED
        first, second = the_message(state, run_id).attempts
        assert first.outcome == "died" and second.outcome == "done"
        assert first.slurm_job == second.slurm_job == job
        assert second.exit_code == 0
        assert second.output_tail.endswith("finished")


def test_cancelling_the_run_cancels_its_slurm_job(
    runzeo,
    kernel,
    database,  # noqa: F811
    tmp_path,
    cleanup,  # noqa: F811
):
    with supervised(runzeo, kernel, tmp_path):
        run_id = start(database, waiting_job(tmp_path), now=None)
        wait_for_state(database, claimed_by(run_id), what="the job")
        with dispatch_state(database) as state:
            job = slurm_job_of(state, run_id)
        (job_pid,) = wait_until(lambda: program_pids(tmp_path), timeout=TIMEOUT)
        completed = dispatch(runzeo, "cancel", run_id)
        assert completed.returncode == 0, completed.stderr
        wait_for_state(
            database,
            lambda state: the_message(state, run_id).state != model.IN_PROGRESS,
            what="the runner to give the message up",
        )
    assert squeue_state(job) == "CANCELLED"
    assert not alive(job_pid)
    with dispatch_state(database) as state:
        assert state.runs[run_id].status == model.CANCELLED
        (attempt,) = the_message(state, run_id).attempts
        assert "ProgramCancelled" in attempt.error and attempt.slurm_job == job


class OnceRunner(CommandRunner):
    """One delivery: the first failure is the dead letter."""

    max_deliveries = 1


def follow_in_thread(zodb):
    """A CommandRunner (one delivery) handling one message in a thread."""
    return Follower(OnceRunner(), zodb)


def dead_attempt(zodb, run_id, timeout=TIMEOUT):
    wait_for_state(
        zodb,
        lambda state: the_message(state, run_id).state == model.DEAD,
        timeout=timeout,
        what="the message to be dead-lettered",
    )
    with dispatch_state(zodb) as state:
        (attempt,) = the_message(state, run_id).attempts
        return attempt.error, attempt.exit_code, programs.program_of(attempt)


def test_a_job_cancelled_outside_dispatch_is_recorded_as_cancelled(
    runzeo,
    kernel,
    database,  # noqa: F811
    tmp_path,
    cleanup,  # noqa: F811
):
    run_id = start(database, waiting_job(tmp_path), now=None)
    runner = follow_in_thread(database)
    try:
        wait_for_state(database, claimed_by(run_id), what="the job")
        with dispatch_state(database) as state:
            job = slurm_job_of(state, run_id)
        subprocess.run(["scancel", str(job)], check=True, timeout=TIMEOUT)
        error, exit_code, program = dead_attempt(database, run_id)
    finally:
        (tmp_path / "go").touch()
        runner.join()
    assert program["slurm_state"] == "CANCELLED"
    assert error == f"CommandFailed: Slurm job ended CANCELLED (status {exit_code})"
    with papa.Papa(kernel) as client:
        assert client.list_processes(f"{programs.PREFIX}.*") == {}


@pytest.mark.slow
def test_a_job_over_its_time_limit_is_recorded_as_timeout(
    runzeo,
    kernel,
    database,  # noqa: F811
    tmp_path,
    cleanup,  # noqa: F811
):
    recipe = waiting_job(tmp_path)
    recipe["1"]["slurm"]["runtime"] = "1"  # a minute; the program waits longer
    run_id = start(database, recipe, now=None)
    runner = follow_in_thread(database)
    try:
        # Slurm looks at time limits every half minute or so.
        error, exit_code, program = dead_attempt(database, run_id, timeout=110)
    finally:
        (tmp_path / "go").touch()
        runner.join()
    assert program["slurm_state"] == "TIMEOUT"
    assert error == f"CommandFailed: Slurm job ended TIMEOUT (status {exit_code})"


def test_a_run_id_too_long_for_a_file_name_still_runs_its_job(
    runzeo,
    kernel,
    database,  # noqa: F811
):
    # The program's name names the job's folder: a file name (255 bytes).
    run_id = "a run/with:odd characters " * 20
    recipe = {"1": RECIPE["1"], "start": [[1, {}]]}
    start(database, recipe, {"guid": run_id}, now=None)
    runner = follow_in_thread(database)
    runner.join()
    with dispatch_state(database) as state:
        message = the_message(state, run_id)
        assert message.state == model.DONE, message.reason
        (attempt,) = message.attempts
        assert attempt.slurm_job and attempt.output_tail.endswith(" in debug")
    with papa.Papa(kernel) as client:
        assert client.list_processes(f"{programs.PREFIX}.*") == {}
