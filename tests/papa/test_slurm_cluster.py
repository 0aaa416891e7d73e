"""Slurm jobs as papa processes, on a real Slurm cluster.

Start the one-node test cluster first (``make slurm-up``, as root).  Without
a cluster answering, every test here is skipped with the reason; with
``ZEOPAPA_REQUIRE_SLURM=1`` (CI) they fail instead.  Nothing is faked: real
sbatch/squeue/scontrol/scancel, and the controller outage is a real stop of
slurmctld.  All waits poll with generous deadlines: the first job after
slurmctld starts runs about 3 s after submission.
"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

import papa
from tests.papa.conftest import read_all as read_all_within
from tests.papa.conftest import wait_for

pytestmark = pytest.mark.slurm

JOB_DEADLINE = 90
SLURMCTLD_PID_FILE = "/run/slurm-local/slurmctld.pid"


@pytest.fixture
def client(slurm_kernels):
    kernel = slurm_kernels()
    with papa.Papa(kernel.port_or_path, connection_timeout=JOB_DEADLINE) as connection:
        yield connection


def read_all(watcher, limit=JOB_DEADLINE):
    return read_all_within(watcher, limit)


def job_state(client, name) -> str:
    return client.list_processes(name)[name]["state"]


def squeue_state(job_id: int) -> str:
    completed = subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", str(job_id), "-o", "%T"],
        capture_output=True,
        text=True,
    )
    return completed.stdout.strip()


def test_job_runs_then_completes_with_its_output(client, tmp_path):
    # The job runs until the test, having seen it RUNNING, creates "go" (a
    # fixed sleep could end before a loaded machine's poll saw it run).
    go = tmp_path / "go"
    info = client.make_process(
        "hello",
        "/bin/sh",
        [
            "-c",
            "echo to-out; echo to-err >&2; "
            f"while [ ! -e '{go}' ]; do sleep 0.1; done; echo done",
        ],
        env={"PATH": "/usr/bin:/bin"},
        slurm={"partition": "debug", "runtime": "5"},
    )
    assert info["pid"] == 0 and info["slurm_job"] > 0
    wait_for(
        lambda: job_state(client, "hello") == "RUNNING",
        timeout=JOB_DEADLINE,
        message="RUNNING",
    )
    listed = client.list_processes("hello")["hello"]
    assert listed["partition"] == "debug" and listed["running"] is True
    go.touch()
    out, err, closed = read_all(client.watch_processes("hello"))
    assert out == b"to-out\ndone\n"
    assert err == b"to-err\n"
    assert closed == {"hello": 0}


def test_failing_job_reports_failed_and_its_exit_code(client):
    client.make_process(
        "three", "/bin/sh", ["-c", "exit 3"], slurm={"partition": "long"}
    )
    wait_for(
        lambda: not client.list_processes("three")["three"]["running"],
        timeout=JOB_DEADLINE,
        message="the job to end",
    )
    listed = client.list_processes("three")["three"]
    assert listed["state"] == "FAILED"
    assert listed["partition"] == "long"
    assert listed["exit_code"] == 3
    assert read_all(client.watch_processes("three"))[2] == {"three": 3}


def test_thirty_jobs_at_once_all_end_with_their_exit_codes(client):
    # One squeue serves every job; each still gets its own state and code.
    expected = {f"many-{number:02}": number % 4 for number in range(30)}
    for name, code in expected.items():
        client.make_process(
            name, "/bin/sh", ["-c", f"echo {name}; exit {code}"], slurm={}
        )
    wait_for(
        lambda: (
            not any(
                info["running"] for info in client.list_processes("many-*").values()
            )
        ),
        timeout=JOB_DEADLINE * 2,
        message="all 30 jobs to end",
    )
    listed = client.list_processes("many-*")
    assert {name: info["exit_code"] for name, info in listed.items()} == expected
    for name, info in listed.items():
        assert info["state"] == ("COMPLETED" if expected[name] == 0 else "FAILED")
    out, _, closed = read_all(client.watch_processes("many-0*"))
    assert closed == {name: code for name, code in expected.items() if "-0" in name}
    assert sorted(out.split()) == sorted(
        name.encode() for name in expected if "-0" in name
    )


def test_cancel_while_pending_and_while_running(client):
    client.make_process("held", "/bin/sleep", ["300"], slurm={"options": "--hold"})
    client.make_process("busy", "/bin/sleep", ["300"], slurm={})
    assert job_state(client, "held") == "PENDING"
    wait_for(
        lambda: job_state(client, "busy") == "RUNNING",
        timeout=JOB_DEADLINE,
        message="RUNNING",
    )
    cancelled = client.cancel_processes("held", "busy")
    assert cancelled == {"held": -15, "busy": -15}
    listed = client.list_processes()
    assert listed["held"]["state"] == "CANCELLED"
    assert listed["busy"]["state"] == "CANCELLED"
    assert not listed["busy"]["running"]
    assert squeue_state(listed["busy"]["slurm_job"]) in ("CANCELLED", "")


def test_cancel_ends_a_local_child_too(client):
    client.make_process("local", "/bin/sleep", ["300"])
    assert client.cancel_processes("local") == {"local": -15}


def test_requests_over_a_limit_are_refused_before_sbatch(client):
    with pytest.raises(
        papa.Error,
        match="runtime 3:00:00 exceeds max-runtime 02:00:00 of partition debug",
    ):
        client.make_process("long-one", "/bin/true", slurm={"runtime": "3:00:00"})
    with pytest.raises(papa.Error, match="nprocs 500 exceeds max-nprocs"):
        client.make_process(
            "wide", "/bin/true", slurm={"partition": "long", "nprocs": 500}
        )
    with pytest.raises(papa.Error, match="Invalid partition|not known to Slurm"):
        client.make_process("nowhere", "/bin/true", slurm={"partition": "nosuch"})
    # sbatch's own error text reaches the caller.
    with pytest.raises(papa.Error, match="sbatch: .*(invalid|unrecognized)"):
        client.make_process("odd", "/bin/true", slurm={"options": "--no-such-option"})
    assert client.list_processes() == {}


def test_a_refused_request_names_its_field_across_the_wire(client):
    with pytest.raises(papa.RequestError) as refused:
        client.make_process(
            "wide", "/bin/true", slurm={"partition": "long", "nprocs": 500}
        )
    assert refused.value.field == "nprocs"
    assert refused.value.message.startswith("nprocs 500 exceeds max-nprocs")
    with pytest.raises(papa.RequestError) as refused:
        client.check_slurm({"partition": "debug", "runtime": "3:00:00"})
    assert refused.value.field == "runtime"
    # check slurm submits nothing and answers with the sbatch options.
    assert client.check_slurm({"partition": "debug", "nprocs": 1}) == [
        "--partition=debug",
        "--cpus-per-task=1",
    ]
    assert client.list_processes() == {}


def test_list_partitions_shows_limits_and_resources(client):
    partitions = client.list_partitions()
    assert set(partitions) == {"debug", "long"}
    debug = partitions["debug"]
    assert debug["default"] is True
    assert debug["max_runtime"] == "02:00:00"
    assert partitions["long"]["max_runtime"] == "INFINITE"
    assert debug["cpus_total"] >= 1 and debug["nodes_total"] == 1
    assert debug["memory_mb"] > 0


def test_environment_prologue_and_path_apply_on_the_node(slurm_kernels, tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    tool = tools / "site-tool"
    tool.write_text("#!/bin/sh\necho site-tool ran\n")
    tool.chmod(0o755)
    config = tmp_path / "papa.conf"
    config.write_text(
        f"""
<kernel>
</kernel>
<slurm>
  <partition debug>
    description Short jobs
    max-runtime 30
    <environment site>
      description Site tools
      path {tools}
      prologue export SITE_MARK=prologue-ran
    </environment>
  </partition>
  <partition long>
  </partition>
</slurm>
"""
    )
    kernel = slurm_kernels(config=config)
    with papa.Papa(kernel.port_or_path, connection_timeout=JOB_DEADLINE) as client:
        assert client.list_partitions()["debug"]["description"] == "Short jobs"
        with pytest.raises(papa.Error, match="runtime 31 exceeds max-runtime 00:30:00"):
            client.make_process("late", "/bin/true", slurm={"runtime": "31"})
        client.make_process(
            "env",
            "/bin/sh",
            ["-c", 'echo "$SITE_MARK"; site-tool'],
            slurm={"environment": "site"},
        )
        out, err, closed = read_all(client.watch_processes("env"))
    assert out == b"prologue-ran\nsite-tool ran\n", err
    assert closed == {"env": 0}


def test_array_of_four_tasks(client):
    client.make_process(
        "array",
        "/bin/sh",
        ["-c", 'echo "task $SLURM_ARRAY_TASK_ID"; exit $((SLURM_ARRAY_TASK_ID == 2))'],
        slurm={"array": "0-3"},
    )
    wait_for(
        lambda: not client.list_processes("array")["array"]["running"],
        timeout=JOB_DEADLINE,
        message="all four tasks to end",
    )
    assert job_state(client, "array") == "FAILED"
    out, _, closed = read_all(client.watch_processes("array"))
    assert sorted(out.decode().splitlines()) == [f"task {n}" for n in range(4)]
    assert closed == {"array": 1}  # task 2 failed


def test_restarted_kernel_readopts_its_job(slurm_kernels, tmp_path):
    state_dir = tmp_path / "kept-state"
    # The job ends once "go" exists, created after the first kernel is
    # killed: a fixed sleep could end while it still ran (or before it was
    # seen RUNNING), and then the state it saved no longer names the job.
    go = tmp_path / "go"
    first = slurm_kernels(state_dir=state_dir)
    with papa.Papa(first.port_or_path, connection_timeout=JOB_DEADLINE) as client:
        info = client.make_process(
            "survivor",
            "/bin/sh",
            [
                "-c",
                f"echo before; while [ ! -e '{go}' ]; do sleep 0.1; done; "
                "echo after; exit 5",
            ],
            slurm={},
        )
        wait_for(
            lambda: job_state(client, "survivor") == "RUNNING",
            timeout=JOB_DEADLINE,
            message="RUNNING",
        )
    wait_for(lambda: (state_dir / "state.json").exists(), message="state written")
    first.kill()
    go.touch()
    job_id = info["slurm_job"]
    wait_for(
        lambda: squeue_state(job_id) not in ("PENDING", "RUNNING", "COMPLETING"),
        timeout=JOB_DEADLINE,
        message="the job to end while no kernel runs",
    )
    second = slurm_kernels(state_dir=state_dir)
    with papa.Papa(second.port_or_path, connection_timeout=JOB_DEADLINE) as client:
        assert client.list_processes("survivor")["survivor"]["slurm_job"] == job_id
        out, _, closed = read_all(client.watch_processes("survivor"))
    assert closed == {"survivor": 5}
    assert out.endswith(b"after\n")


@pytest.mark.slow
def test_a_job_purged_while_no_kernel_ran_ends_from_the_jobcomp_log(
    slurm_kernels, tmp_path
):
    # Cancelled while no kernel watched, the script never wrote its status;
    # once Slurm purged the job (MinJobAge) only the jobcomp log knows.
    state_dir = tmp_path / "kept-state"
    first = slurm_kernels(state_dir=state_dir)
    with papa.Papa(first.port_or_path, connection_timeout=JOB_DEADLINE) as client:
        info = client.make_process("orphan", "/bin/sleep", ["300"], slurm={})
        wait_for(
            lambda: job_state(client, "orphan") == "RUNNING",
            timeout=JOB_DEADLINE,
            message="RUNNING",
        )
    wait_for(lambda: (state_dir / "state.json").exists(), message="state written")
    first.kill()
    job_id = info["slurm_job"]
    subprocess.run(["scancel", str(job_id)], check=True)
    wait_for(
        lambda: squeue_state(job_id) == "",
        timeout=JOB_DEADLINE * 2,
        message="Slurm to purge the job",
    )
    second = slurm_kernels(state_dir=state_dir)
    with papa.Papa(second.port_or_path, connection_timeout=JOB_DEADLINE) as client:
        wait_for(
            lambda: not client.list_processes("orphan")["orphan"]["running"],
            timeout=JOB_DEADLINE,
            message="the adopted job to end",
        )
        assert job_state(client, "orphan") == "CANCELLED"
        assert read_all(client.watch_processes("orphan"))[2] == {"orphan": -15}


def slurmctld_alive() -> bool:
    try:
        with open(SLURMCTLD_PID_FILE) as pid_file:
            pid = int(pid_file.read())
        with open(f"/proc/{pid}/stat") as stat_file:
            return ") Z" not in stat_file.read()
    except (OSError, ValueError):
        return False


def test_controller_outage_is_not_a_gone_job(client, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("stopping slurmctld needs root")
    # The job runs until "go" exists, created once slurmctld is back: with a
    # fixed sleep it could end before a slow slurmctld shutdown let a query
    # fail, and the failed query would never show.
    go = tmp_path / "go"
    client.make_process(
        "steady",
        "/bin/sh",
        ["-c", f"while [ ! -e '{go}' ]; do sleep 0.1; done; echo fine"],
        slurm={},
    )
    wait_for(
        lambda: job_state(client, "steady") == "RUNNING",
        timeout=JOB_DEADLINE,
        message="RUNNING",
    )
    with open(SLURMCTLD_PID_FILE) as pid_file:
        os.kill(int(pid_file.read()), signal.SIGTERM)
    try:
        wait_for(lambda: not slurmctld_alive(), message="slurmctld stopped")
        wait_for(
            lambda: (
                "state_unknown" in client.list_processes("steady")["steady"]["reason"]
            ),
            message="the failed query to show",
        )
        listed = client.list_processes("steady")["steady"]
        assert listed["running"] is True and listed["state"] == "RUNNING"
    finally:
        subprocess.run(["slurmctld"], check=True)
    wait_for(slurmctld_alive, message="slurmctld back")
    go.touch()
    out, _, closed = read_all(client.watch_processes("steady"))
    assert closed == {"steady": 0}
    assert out == b"fine\n"


@pytest.mark.slow
def test_time_limit_ends_the_job_as_timeout(client):
    client.make_process("slowpoke", "/bin/sleep", ["600"], slurm={"runtime": "1"})
    wait_for(
        lambda: not client.list_processes("slowpoke")["slowpoke"]["running"],
        timeout=180,
        interval=0.5,
        message="the time limit to end the job",
    )
    assert job_state(client, "slowpoke") == "TIMEOUT"
    _, _, closed = read_all(client.watch_processes("slowpoke"))
    assert closed == {"slowpoke": -15}


def test_telnet_submit_list_and_cancel(slurm_kernels):
    kernel = slurm_kernels()
    session = kernel.raw()
    try:
        reply = session.command(
            "make process held slurm.options=--hold\\ --comment=x /bin/sleep 300"
        ).decode()
        assert "pid=0 " in reply and "state=PENDING" in reply, reply
        listed = session.command("l p held").decode()
        assert "slurm_job=" in listed and "reason=" in listed, listed
        partitions = session.command("l pa").decode()
        assert partitions.startswith("debug ") or "\ndebug " in partitions, partitions
        assert "\nlong " in partitions or partitions.startswith("long ")
        cancelled = session.command("cancel processes held").decode()
        assert cancelled.startswith("held exit_code=-15"), cancelled
        bad = session.command("make process x slurm.nprocs=lots /bin/true").decode()
        assert bad.startswith("Error: slurm.nprocs: nprocs must be a whole number"), bad
    finally:
        session.close()
