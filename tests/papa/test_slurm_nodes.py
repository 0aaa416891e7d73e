"""papa on a Slurm cluster of two nodes (tests/support/slurm_nodes.py): a
kernel pointed at it by ``SLURM_CONF``, jobs placed on each node, the node
a job runs on listed, and a node that dies mid-job seen as ``NODE_FAIL``.

Skipped without root or Slurm; failed instead under ZEOPAPA_REQUIRE_SLURM.
"""

import pytest

import papa
from tests.papa.conftest import read_all
from tests.support.polling import wait_until
from tests.support.slurm_nodes import NODES, PARTITION, ClusterKernel

pytestmark = pytest.mark.slurm

DEADLINE = 60.0


@pytest.fixture
def client(two_node_cluster, tmp_path):
    kernel = ClusterKernel(two_node_cluster, tmp_path).start()
    try:
        with papa.Papa(kernel.port_or_path, connection_timeout=DEADLINE) as client:
            yield client
    finally:
        kernel.stop()


def entry(client, name):
    return client.list_processes(name)[name]


def test_the_partition_spans_both_nodes(two_node_cluster):
    listed = two_node_cluster.tool("sinfo", "-h", "-N", "-p", PARTITION, "-o", "%N")
    assert sorted(listed.split()) == list(NODES)


def test_a_job_runs_on_the_node_asked_and_papa_lists_that_node(client):
    for node in NODES:
        client.make_process(
            f"on-{node}",
            "/bin/sh",
            args=["-c", 'echo "$SLURMD_NODENAME"'],
            slurm={
                "partition": PARTITION,
                "runtime": "2",
                "options": f"--nodelist={node}",
            },
        )
    for node in NODES:
        name = f"on-{node}"
        # An ended job stays listed until its end is read.
        ended = wait_until(
            lambda name=name: (
                (e := entry(client, name)).get("exit_code") is not None and e
            ),
            DEADLINE,
            message=f"{name} to end",
        )
        assert (ended["state"], ended["nodelist"]) == ("COMPLETED", node)
        with client.watch_processes(name) as watcher:
            out, _err, closed = read_all(watcher, DEADLINE)
        assert out.decode().strip() == node  # where Slurm ran it
        assert closed == {name: 0}


def test_a_node_killed_mid_job_ends_the_job_node_fail(two_node_cluster, client):
    victim = NODES[1]
    client.make_process(
        "doomed",
        "/bin/sh",
        args=["-c", "echo started; exec sleep 600"],
        slurm={
            "partition": PARTITION,
            "runtime": "20",
            "options": f"--nodelist={victim}",
        },
    )
    wait_until(
        lambda: entry(client, "doomed")["state"] == "RUNNING",
        DEADLINE,
        message="the job running",
    )
    assert entry(client, "doomed")["nodelist"] == victim
    two_node_cluster.kill_node(victim)
    try:
        ended = wait_until(
            lambda: (e := entry(client, "doomed")).get("exit_code") is not None and e,
            DEADLINE,
            message="papa to see the job end",
        )
        assert ended["state"] == "NODE_FAIL"
        assert ended["exit_code"] != 0  # never taken for a success
        assert two_node_cluster.node_state(victim).startswith("down")
    finally:
        two_node_cluster.start_node(victim)  # back in service for later tests
