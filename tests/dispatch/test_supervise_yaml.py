"""``dispatch supervise -C site.yaml -e ENV`` with a real runzeo, papa
kernel and service processes: the instances get the environment's storage
(``self.config.storage``) and its logging, record heartbeats, and
``dispatch status`` shows their queue, claims and heartbeat (stale past
``--within``: a frozen instance)."""

import contextlib
import io
import json
import os
import signal
import subprocess

import zeo
from dispatch.cli import main
from dispatch.state import admin, model
from dispatch.state.database import dispatch_state
from tests.conftest import PYTHON
from tests.dispatch.conftest import wait_for_state, wait_until
from tests.dispatch.test_commandrunner import papa_kernel  # noqa: F401
from tests.dispatch.test_run_cli import ROOT, TIMEOUT, dispatch, environment

SITE = """\
version: 1
dispatch-test:
  plugin: dispatch
  zeo: {zeo}
  papa: {papa}
  name: yamltest
  restart-backoff: 0.1
  heartbeat-interval: 0.2
  services:
    report:
      service: tests.dispatch.services:StorageReport
      instances: 1
dispatch-live:
  plugin: dispatch
  zeo: 127.0.0.1:1
  services:
    report: {{instances: 5}}
constants:
  plugin: storage
  zocalo.recipe_directory: /site/recipes
  beamline: i04
logging:
  plugin: logging
  handlers:
    file: {{class: logging.FileHandler, filename: {log}}}
  root: {{level: INFO, handlers: [file]}}
environments:
  test: [dispatch-test, constants, logging]
  default: [dispatch-live]
"""


def status_rows(runzeo, *arguments):
    """``dispatch status`` (in this process: it is called in loops)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["status", "--zeo", runzeo.address_text, *arguments]) == 0
    header, *rows = [line.split() for line in out.getvalue().splitlines()]
    assert header == "SERVICE HOST PID STATUS QUEUE CLAIMS HEARTBEAT".split()
    return rows


def test_supervised_instances_get_the_environment_and_beat(
    runzeo,
    papa_kernel,  # noqa: F811
    tmp_path,
):
    log = tmp_path / "site.log"
    site = tmp_path / "site.yaml"
    site.write_text(SITE.format(zeo=runzeo.address_text, papa=papa_kernel, log=log))
    report = tmp_path / "report.json"
    recipe = tmp_path / "report-recipe.json"
    recipe.write_text(
        json.dumps(
            {
                "1": {"queue": "storage-report"},
                "start": [[1, {"report": str(report)}]],
            }
        )
    )
    supervise = subprocess.Popen(
        [PYTHON, "-m", "dispatch.cli", "supervise", "-C", str(site), "-e", "test"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(runzeo),
        cwd=ROOT,
    )
    database = zeo.DB(runzeo.address)
    try:
        line = supervise.stdout.readline()
        assert line.startswith("supervising 1 instance(s): report.1"), line
        started = dispatch(runzeo, "go", recipe)
        assert started.returncode == 0, started.stderr
        run_id = started.stdout.split()[-1]
        wait_until(report.exists, message="the service to report its storage")
        assert json.loads(report.read_text()) == {
            "zocalo.recipe_directory": "/site/recipes",
            "beamline": "i04",
        }

        def beating(dispatch):
            (instance,) = admin.instances_of(dispatch).values()
            beat = instance.heartbeat.time
            return instance if beat > instance.started else None

        instance = wait_for_state(database, beating, what="a heartbeat")
        # The instance holds the message: one claim on its queue.
        (row,) = status_rows(runzeo)
        assert row[0] == "StorageReport" and row[2] == str(instance.pid)
        assert row[3:6] == ["running", "storage-report", "1"]
        assert row[-1] == "ago"
        # A frozen instance stops beating: stale once --within has passed.
        os.kill(instance.pid, signal.SIGSTOP)
        try:
            wait_until(
                lambda: status_rows(runzeo, "--within", "1")[0][3] == "stale",
                message="the frozen instance to be listed as stale",
            )
        finally:
            os.kill(instance.pid, signal.SIGCONT)
        wait_until(
            lambda: status_rows(runzeo, "--within", "1")[0][3] == "running",
            message="the thawed instance to beat again",
        )
    finally:
        supervise.send_signal(signal.SIGTERM)
        out, errors = supervise.communicate(timeout=TIMEOUT)
        print(errors)  # shown when the test fails
    try:
        assert supervise.returncode == 0, errors
        with dispatch_state(database) as state:
            assert state.runs[run_id].status == model.SUCCEEDED
            (stopped,) = admin.instances_of(state).values()
            assert stopped.stopped is not None
        # Both the supervisor and the instance logged through the YAML's
        # logging section.
        logged = log.read_text()
        assert "yamltest.report.1.1 started as pid" in logged
        assert "stopping after the current message" in logged
    finally:
        database.close()
    assert status_rows(runzeo) == []
