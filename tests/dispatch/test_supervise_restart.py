"""A ``dispatch supervise`` killed with SIGKILL and started again adopts the
instances papa still runs, and settles the ones that died while no
supervisor watched: their claims are released at once (not after the
300 s lease), and numbering goes on after them.

Found by the dispatch crash soak (``bench/soak/dispatch_crash.py``): a
restarted supervisor numbered its instances from 1 again, so it started a
second instance beside a running ``NAME.1.2`` that nobody watched any more,
and when that one died its message stayed claimed until its lease lapsed.
"""

import json
import os
import signal
import subprocess

import papa
import zeo
from dispatch.state import model
from tests.conftest import PYTHON
from tests.dispatch.conftest import wait_for_state, wait_until
from tests.dispatch.test_broker import read
from tests.dispatch.test_commandrunner import papa_kernel  # noqa: F401
from tests.dispatch.test_run_cli import ROOT, TIMEOUT, dispatch, environment
from tests.dispatch.test_supervise import HOLD, hold_configuration


class Supervise:
    """``dispatch supervise`` with its output in a file."""

    def __init__(self, runzeo, configuration, log):
        self.log = log
        with open(log, "ab") as output:
            self.process = subprocess.Popen(
                [PYTHON, "-m", "dispatch.cli", "supervise", "-C", str(configuration)],
                stdout=output,
                stderr=output,
                env=environment(runzeo),
                cwd=ROOT,
            )

    def says(self, text):
        return text in self.log.read_text()

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(TIMEOUT)


def running(kernel_port):
    with papa.Papa(kernel_port) as kernel:
        listed = kernel.list_processes("test.*")
    return {name: int(info["pid"]) for name, info in listed.items() if info["running"]}


def test_a_restarted_supervisor_adopts_and_settles_its_instances(
    runzeo,
    papa_kernel,  # noqa: F811
    tmp_path,
):
    holding, done = tmp_path / "holding", tmp_path / "done"
    configuration = hold_configuration(tmp_path, runzeo, papa_kernel)
    log = tmp_path / "supervise.log"
    supervise = Supervise(runzeo, configuration, log)
    try:
        # The instance's second life, test.hold.1.2, holds the message.
        first = wait_until(lambda: running(papa_kernel).get("test.hold.1.1"))
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: "test.hold.1.2" in running(papa_kernel))
        recipe = dict(HOLD, start=[[1, {"holding": str(holding), "done": str(done)}]])
        recipe_path = tmp_path / "hold.json"
        recipe_path.write_text(json.dumps(recipe))
        started = dispatch(runzeo, "go", recipe_path)
        assert started.returncode == 0, started.stderr
        run_id = started.stdout.split()[-1]
        wait_until(holding.exists, message="the instance to hold the message")
        holder = int(holding.read_text())
        assert running(papa_kernel) == {"test.hold.1.2": holder}

        supervise.kill()
        starts = log.read_text().count("started as pid")
        supervise = Supervise(runzeo, configuration, log)
        wait_until(
            lambda: (
                supervise.says(f"test.hold.1.2: adopting it (pid {holder})")
                or log.read_text().count("started as pid") > starts
            ),
            message="the new supervisor to take up the slot",
        )
        assert running(papa_kernel) == {"test.hold.1.2": holder}  # no second one

        # The holder dies while no supervisor watches it.
        supervise.kill()
        os.kill(holder, signal.SIGKILL)
        supervise = Supervise(runzeo, configuration, log)
        database = zeo.DB(runzeo.address)
        try:
            wait_for_state(
                database,
                lambda state: state.runs[run_id].status == model.SUCCEEDED,
                timeout=TIMEOUT,  # the lease would be 300 s
                what="the message released and handled again",
            )
            (handler,) = map(int, done.read_text().split())
            assert running(papa_kernel) == {"test.hold.1.3": handler}

            def attempts(state):
                run = state.runs[run_id]
                (message,) = run.steps[1].messages(run)
                return [(a.pid, a.outcome) for a in message.attempts]

            assert read(database, attempts) == [(holder, "died"), (handler, "done")]
        finally:
            database.close()
    finally:
        supervise.stop()
    assert supervise.process.returncode == 0, log.read_text()
    assert running(papa_kernel) == {}
