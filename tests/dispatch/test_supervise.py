"""``dispatch supervise`` with a real runzeo, a real papa kernel and real
service processes: a service instance killed with SIGKILL mid-message is
restarted through papa, and its message, released at once, is handled
exactly once by the new instance."""

import json
import os
import signal
import subprocess

import papa
import zeo
from dispatch.runtime.kernel import kernel_answers
from dispatch.state import model
from dispatch.state.database import dispatch_state
from tests.conftest import PYTHON
from tests.dispatch.conftest import wait_until
from tests.dispatch.test_commandrunner import papa_kernel  # noqa: F401
from tests.dispatch.test_run_cli import ROOT, TIMEOUT, dispatch, environment

HOLD = {"1": {"service": "Hold", "queue": "hold"}, "start": [[1, {}]]}


def write_configuration(tmp_path, runzeo, port, services):
    path = tmp_path / "dispatch.conf"
    path.write_text(
        f"zeo {runzeo.address_text}\npapa {port}\nname test\n"
        "restart-backoff 0.1\n" + services
    )
    return path


def hold_configuration(tmp_path, runzeo, port):
    """A configuration of one instance of the Hold service."""
    return write_configuration(
        tmp_path,
        runzeo,
        port,
        "<service hold>\n  service tests.dispatch.services:Hold\n"
        "  instances 1\n</service>\n",
    )


def start_supervise(runzeo, configuration):
    process = subprocess.Popen(
        [PYTHON, "-m", "dispatch.cli", "supervise", "-C", str(configuration)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(runzeo),
        cwd=ROOT,
    )
    line = process.stdout.readline()
    assert line.startswith("supervising"), line + process.stderr.read()
    return process


def test_a_killed_instance_is_restarted_and_its_message_handled_once(
    runzeo,
    papa_kernel,  # noqa: F811
    tmp_path,
):
    holding, done = tmp_path / "holding", tmp_path / "done"
    recipe = dict(HOLD, start=[[1, {"holding": str(holding), "done": str(done)}]])
    recipe_path = tmp_path / "hold.json"
    recipe_path.write_text(json.dumps(recipe))
    configuration = hold_configuration(tmp_path, runzeo, papa_kernel)
    supervise = start_supervise(runzeo, configuration)
    go = None
    try:
        go = subprocess.Popen(
            [PYTHON, "-m", "dispatch.cli", "go", str(recipe_path), "--wait"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(runzeo),
        )
        wait_until(holding.exists, message="the service to hold the message")
        killed = int(holding.read_text())
        os.kill(killed, signal.SIGKILL)
        out, errors = go.communicate(timeout=TIMEOUT)
        assert go.returncode == 0, out + errors
        run_id = out.splitlines()[0].split()[-1]
        (handler_pid,) = done.read_text().split()
        assert int(handler_pid) != killed
        with papa.Papa(papa_kernel) as kernel:
            running = {
                name: info
                for name, info in kernel.list_processes("test.*").items()
                if info["running"]
            }
        # Which instances ran, if another restart happened (for a failure).
        assert list(running) == ["test.hold.1.2"], (running, out)
        assert int(running["test.hold.1.2"]["pid"]) == int(handler_pid)
    finally:
        if go is not None and go.poll() is None:
            go.kill()
            go.wait()
        supervise.send_signal(signal.SIGTERM)
        out, errors = supervise.communicate(timeout=TIMEOUT)
        print(errors)  # shown when the test fails
    assert supervise.returncode == 0, errors
    assert "every instance stopped" in out

    database = zeo.DB(runzeo.address)
    try:
        with dispatch_state(database) as state:
            run = state.runs[run_id]
            assert run.status == model.SUCCEEDED
            (message,) = run.steps[1].messages(run)
            first, second = message.attempts
            assert (first.pid, first.outcome) == (killed, "died")
            assert f"(pid {killed}) died with exit status" in first.error
            assert (int(second.pid), second.outcome) == (int(handler_pid), "done")
            instances = [
                instance
                for instance in state.instances.values()
                if instance.pid in (killed, int(handler_pid))
            ]
            assert all(instance.stopped is not None for instance in instances)
            assert len(instances) == 2
    finally:
        database.close()
    with papa.Papa(papa_kernel) as kernel:
        assert not any(
            info["running"] for info in kernel.list_processes("test.*").values()
        )


def test_a_configuration_naming_an_unknown_service_is_refused(runzeo, tmp_path):
    configuration = write_configuration(
        tmp_path, runzeo, 1, "<service nosuch>\n  instances 2\n</service>\n"
    )
    completed = dispatch(runzeo, "supervise", "-C", configuration)
    assert completed.returncode == 2
    assert "service 'nosuch' is not known" in completed.stderr


def test_a_configuration_without_services_is_refused(runzeo, tmp_path):
    configuration = write_configuration(tmp_path, runzeo, 1, "")
    completed = dispatch(runzeo, "supervise", "-C", configuration)
    assert completed.returncode == 2
    assert str(configuration) in completed.stderr
    assert "service" in completed.stderr


def test_an_instance_asked_to_stop_is_not_restarted(
    runzeo,
    papa_kernel,  # noqa: F811
    tmp_path,
):
    configuration = write_configuration(
        tmp_path,
        runzeo,
        papa_kernel,
        "<service collect>\n  service tests.dispatch.services:Collect\n"
        "  instances 1\n</service>\n",
    )
    supervise = start_supervise(runzeo, configuration)
    try:
        for line in supervise.stderr:
            if "[collect.1] service" in line and "ready on queue" in line:
                break
        completed = dispatch(runzeo, "shutdown", "Collect")
        assert completed.returncode == 0, completed.stderr
        for line in supervise.stderr:
            assert "died" not in line, line
            if "test.collect.1.1 stopped (exit status 0)" in line:
                break
        with papa.Papa(papa_kernel) as kernel:
            processes = kernel.list_processes("test.*")
        assert not any(info["running"] for info in processes.values())
        assert "test.collect.1.2" not in processes
    finally:
        supervise.send_signal(signal.SIGTERM)
        out, errors = supervise.communicate(timeout=TIMEOUT)
    assert supervise.returncode == 0, errors


def test_no_papa_kernel_is_an_error_and_none_is_started(runzeo, tmp_path):
    from tests.conftest import free_port

    port = free_port()
    configuration = write_configuration(
        tmp_path, runzeo, port, "<service greeter>\n  instances 1\n</service>\n"
    )
    completed = dispatch(runzeo, "supervise", "-C", configuration)
    assert completed.returncode == 3, completed.stderr
    assert f"no papa kernel answers at {port}" in completed.stderr
    assert not kernel_answers(port)
