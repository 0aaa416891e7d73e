"""Kill a recorded run half-way (SIGKILL) and resume it in a new process,
against a real runzeo process; read the run from other processes meanwhile."""

import json
import signal
import subprocess
import threading
from pathlib import Path

import pytest

import zeo
from dispatch.jobs import persist
from dispatch.jobs.cli import parse_address
from tests.conftest import PYTHON

from .conftest import RUN_TIMEOUT

RUNNER = Path(__file__).resolve().parent / "runner.py"

pytestmark = pytest.mark.slow


def start_runner(server, work, mode):
    return subprocess.Popen(
        [PYTHON, str(RUNNER), server.address_text, "evening", str(work), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def show(server, *arguments):
    completed = subprocess.run(
        [PYTHON, "-m", "dispatch.cli", "jobs", "--zeo", server.address_text]
        + ["show", "evening", *arguments],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def executions(work):
    lines = (work / "executions.log").read_text().splitlines()
    return [line.split()[0] for line in lines], {line.split()[1] for line in lines}


def test_kill_half_way_and_resume_in_a_new_process(runzeo, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    first = start_runner(runzeo, work, "hang")
    try:
        # The runner says HANG once First and Second are committed and
        # Blocker's attempt has started: an event, not a sleep.
        assert first.stdout.readline() == "HANG\n"

        # Another process reads the run while it is running.
        during = json.loads(show(runzeo, "--json"))
        statuses = {job["name"]: job["status"] for job in during["jobs"]}
        assert statuses == {
            "First": "eventually passed",
            "Second": "eventually passed",
            "Blocker": "running",
            "Final": "pending",
            "Everything": "pending",
        }
        assert during["state"] == "running"
        assert during["sessions"][0]["pid"] == first.pid

        first.send_signal(signal.SIGKILL)
        first.wait(RUN_TIMEOUT)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == -signal.SIGKILL
    steps_before, _ = executions(work)
    assert steps_before[-1] == "Blocker.hang"

    second = start_runner(runzeo, work, "finish")
    output, errors = second.communicate(timeout=RUN_TIMEOUT)
    assert second.returncode == 0, errors
    report = json.loads(output)
    assert report["status"] == {
        "First": True,
        "Second": True,
        "Blocker": True,
        "Final": True,
        "Everything": True,
    }
    # global_storage written by the killed process reached the new one.
    assert report["results"]["Final"] == f"made by {first.pid}"
    steps, pids = executions(work)
    resumed = steps[len(steps_before) :]
    # Nothing that succeeded was checked or run again.
    assert not any(step.startswith(("First.", "Second.")) for step in resumed)
    assert resumed == ["Blocker.check", "Blocker.run", "Blocker.check", "Final.check"]
    # Only the resumed attempt's lines: the verbose output restarts there.
    assert errors.splitlines() == [
        "Blocker.check: fail",
        "Blocker.run: pass",
        "Blocker.recheck: pass",
        "Final.check: pass",
        "Everything.check: pass",
    ]
    assert pids == {str(first.pid), str(second.pid)}

    after = json.loads(show(runzeo, "--json"))
    assert after["state"] == "finished"
    blocker = next(job for job in after["jobs"] if job["name"] == "Blocker")
    assert blocker["attempts"] == 2
    assert blocker["status"] == "eventually passed"
    assert after["sessions"][0]["adoptions"] == 1
    table = show(runzeo)
    assert "Blocker" in table and "eventually passed" in table


def test_a_reader_process_sees_commits_as_they_happen(runzeo, tmp_path):
    """A second client watching the run (ClientStorage.watch) is told of the
    runner's commits without polling."""
    # server_sync: a transaction begun makes a round trip first, so every
    # invalidation committed before it has reached this client (opening a
    # connection alone does not sync).
    database = zeo.DB(parse_address(runzeo.address_text), server_sync=True)
    seen = threading.Event()
    handle = database.storage.watch(lambda tid, oids: seen.set())
    work = tmp_path / "work"
    work.mkdir()
    runner = start_runner(runzeo, work, "hang")
    try:
        assert runner.stdout.readline() == "HANG\n"
        assert seen.wait(RUN_TIMEOUT)
        connection = database.open()
        try:
            connection.transaction_manager.begin()
            run = persist.load_run(connection, "evening")
            assert run.nodes["Second"].status is True
            assert run.nodes["Blocker"].running is True
        finally:
            connection.transaction_manager.abort()
            connection.close()
    finally:
        handle.close()
        runner.kill()
        runner.wait()
        database.close()
