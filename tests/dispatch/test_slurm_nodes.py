"""dispatch on a Slurm cluster of two nodes (tests/support/slurm_nodes.py):
real runzeo, a papa kernel pointed at the cluster, ``dispatch supervise``.

Two steps started together, each asking for a whole node, run at once on
the two nodes; a step whose node dies mid-job ends ``NODE_FAIL`` and is
retried on the node left.  Each attempt records where it ran.
"""

import pytest

from dispatch.state import model
from dispatch.state.database import dispatch_state
from tests.dispatch.conftest import wait_for_state
from tests.dispatch.test_adopt import database, supervised  # noqa: F401
from tests.dispatch.test_broker import start
from tests.support.polling import wait_until
from tests.support.slurm_nodes import NODES, PARTITION, ClusterKernel

pytestmark = pytest.mark.slurm

TIMEOUT = 90.0
SERVICES = (
    "<service commandrunner>\n"
    "  service tests.dispatch.test_slurm_step:QuickRunner\n"
    "  instances 2\n</service>\n"
)


@pytest.fixture
def kernel(two_node_cluster, tmp_path, monkeypatch):
    kernel = ClusterKernel(two_node_cluster, tmp_path, debug=False).start()
    monkeypatch.setenv("DISPATCH_PAPA", str(kernel.port_or_path))
    try:
        yield kernel.port_or_path
    finally:
        kernel.stop()


def whole_node_step(go):
    """A step holding all of a node's CPUs until the *go* file exists."""
    script = f'while [ ! -e {go} ]; do sleep 0.05; done; echo "$SLURMD_NODENAME"'
    return {
        "command": ["/bin/sh", "-c", script],
        "slurm": {"partition": PARTITION, "nprocs": 2, "runtime": "5"},
    }


def running_jobs(cluster, count):
    """``{job id: node}`` once *count* jobs of the cluster run, else None."""
    lines = cluster.tool("squeue", "-h", "-t", "RUNNING", "-o", "%i %N").split()
    jobs = dict(zip(lines[::2], lines[1::2], strict=True))
    return jobs if len(jobs) == count else None


def attempts_of(state, run_id):
    run = state.runs[run_id]
    return {
        step: message.attempts
        for step in sorted(run.steps)
        for message in run.steps[step].messages(run)
    }


def test_a_fan_out_lands_on_both_nodes(
    runzeo,
    kernel,
    database,  # noqa: F811
    two_node_cluster,
    tmp_path,
):
    go = tmp_path / "go"
    recipe = {
        "1": whole_node_step(go),
        "2": whole_node_step(go),
        "start": [[1, {}], [2, {}]],
    }
    with supervised(runzeo, kernel, tmp_path, SERVICES):
        run_id = start(database, recipe, now=None)
        # Both hold a whole node at the same time: one on each.
        jobs = wait_until_running(two_node_cluster, 2)
        assert sorted(jobs.values()) == list(NODES)
        go.touch()
        wait_for_state(
            database,
            lambda state: state.runs[run_id].status != model.RUNNING,
            timeout=TIMEOUT,
            what="the run to end",
        )
    with dispatch_state(database) as state:
        assert state.runs[run_id].status == model.SUCCEEDED
        ran_on = {}
        for (attempt,) in attempts_of(state, run_id).values():
            assert attempt.outcome == "done" and attempt.exit_code == 0
            node = attempt.program["slurm_nodes"]
            assert attempt.output_tail == node == jobs[str(attempt.slurm_job)]
            ran_on[attempt.slurm_job] = node
        assert sorted(ran_on.values()) == list(NODES)


def test_a_step_whose_node_dies_is_retried_on_the_other(
    runzeo,
    kernel,
    database,  # noqa: F811
    two_node_cluster,
    tmp_path,
):
    go = tmp_path / "go"
    recipe = {"1": whole_node_step(go), "start": [[1, {}]]}
    with supervised(runzeo, kernel, tmp_path, SERVICES):
        run_id = start(database, recipe, now=None)
        ((job, victim),) = wait_until_running(two_node_cluster, 1).items()
        two_node_cluster.kill_node(victim)  # its job's processes are gone
        try:
            go.touch()  # only a new job can see it
            wait_for_state(
                database,
                lambda state: state.runs[run_id].status != model.RUNNING,
                timeout=TIMEOUT,
                what="the run to end",
            )
        finally:
            two_node_cluster.start_node(victim)
    (survivor,) = set(NODES) - {victim}
    with dispatch_state(database) as state:
        assert state.runs[run_id].status == model.SUCCEEDED
        ((lost, retried),) = attempts_of(state, run_id).values()
        assert str(lost.slurm_job) == job and lost.outcome != "done"
        assert lost.program["slurm_state"] == "NODE_FAIL"
        assert lost.program["slurm_nodes"] == victim
        assert "NODE_FAIL" in lost.error
        assert retried.slurm_job != lost.slurm_job  # a new job
        assert (retried.outcome, retried.exit_code) == ("done", 0)
        assert retried.program["slurm_nodes"] == retried.output_tail == survivor


def wait_until_running(cluster, count):
    return wait_until(
        lambda: running_jobs(cluster, count),
        TIMEOUT,
        message=f"{count} jobs running",
    )
