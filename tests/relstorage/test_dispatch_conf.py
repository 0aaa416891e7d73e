"""dispatch.conf with a ``<zodb>`` section instead of ``zeo``: ``dispatch
supervise -C`` opens RelStorage on the session's PostgreSQL itself and its
instances open it too (the supervisor hands them ``zodb:`` and the same
file); the CLI takes the same file as ``--zeo zodb:dispatch.conf``.  Bad
configurations are usage errors naming the problem."""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess

import pytest

from dispatch.cli.base import CommandError, open_database
from tests.dispatch.test_commandrunner import papa_kernel  # noqa: F401
from tests.dispatch.test_run_cli import PIPELINE, dispatch, environment
from tests.relstorage.test_dispatch_direct import Direct
from tests.support import PYTHON, ROOT, free_port
from tests.support.postgresql import relstorage_config

TIMEOUT = 90

SERVICES = (
    "<service upper>\n  service tests.dispatch.services:Upper\n</service>\n"
    "<service collect>\n  service tests.dispatch.services:Collect\n</service>\n"
)


def configuration(tmp_path, papa, zodb: str, zeo: str = "") -> str:
    path = tmp_path / "dispatch.conf"
    path.write_text(
        "%import relstorage\n"
        + (f"zeo {zeo}\n" if zeo else "")
        + f"papa {papa}\nname test\nrestart-backoff 0.1\n"
        + f"<zodb>\n{zodb}</zodb>\n"
        + SERVICES
    )
    return str(path)


def supervise(path):
    # No $DISPATCH_ZEO: the file alone says where the database is.
    return subprocess.Popen(
        [PYTHON, "-m", "dispatch.cli", "supervise", "-C", path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(Direct("")),
        cwd=ROOT,
    )


def test_supervise_with_a_zodb_section_runs_its_services_on_relstorage(
    database,
    papa_kernel,  # noqa: F811
    tmp_path,
):
    path = configuration(tmp_path, papa_kernel, relstorage_config(database))
    target = Direct(f"zodb:{path}")
    # The schema is installed once, here, not by several processes at once.
    open_database(target.address_text).close()
    process = supervise(path)
    try:
        line = process.stdout.readline()
        assert line.startswith("supervising 2 instance(s)"), (
            line + process.stderr.read()
        )
        recipe = tmp_path / "pipeline.json"
        recipe.write_text(json.dumps(PIPELINE))
        go = dispatch(target, "go", recipe, "-p", "text=direct", "--wait")
    finally:
        process.send_signal(signal.SIGTERM)
        _out, errors = process.communicate(timeout=TIMEOUT)
    assert go.returncode == 0, go.stdout + go.stderr
    run_id = go.stdout.splitlines()[0]
    assert f"run {run_id}: succeeded" in go.stdout
    assert process.returncode == 0, errors
    shown = dispatch(target, "show", run_id, "--json")
    assert json.loads(shown.stdout)["status"] == "succeeded", shown.stderr


def test_both_zeo_and_zodb_is_a_usage_error(tmp_path):
    dsn = f"dbname=none host=127.0.0.1 port={free_port()}"
    path = configuration(tmp_path, 1, relstorage_config(dsn), zeo="127.0.0.1:1")
    completed = subprocess.run(
        [PYTHON, "-m", "dispatch.cli", "supervise", "-C", path],
        capture_output=True,
        text=True,
        env=environment(Direct("")),
        timeout=TIMEOUT,
    )
    assert completed.returncode == 2, completed.stderr
    assert "both a zeo key and a <zodb> section" in completed.stderr


def test_a_database_that_cannot_open_is_a_usage_error(tmp_path):
    # Nothing listens on that port: PostgreSQL refuses before anything is written.
    dsn = f"dbname=none host=127.0.0.1 port={free_port()} connect_timeout=5"
    path = configuration(tmp_path, 1, relstorage_config(dsn))
    with pytest.raises(
        CommandError, match="cannot open the database of .*dispatch.conf"
    ):
        open_database(f"zodb:{path}")


def test_a_dispatch_conf_without_zodb_is_no_database(tmp_path):
    path = tmp_path / "dispatch.conf"
    path.write_text(f"zeo 127.0.0.1:1\n{SERVICES}")
    with pytest.raises(CommandError, match="has no <zodb> section"):
        open_database(f"zodb:{path}")


def test_the_example_configuration_names_a_relstorage_database():
    from dispatch.runtime.configuration import database_target, load_configuration

    path = str(ROOT / "conf" / "dispatch-relstorage.conf")
    config = load_configuration(path)
    assert config.zeo is None and config.zodb.config.storage is not None
    assert database_target(config, path, "127.0.0.1:1") == f"zodb:{path}"


def test_the_console_on_a_zodb_section_reads_the_database_itself(database, tmp_path):
    path = configuration(tmp_path, 1, relstorage_config(database))
    with open(path, "a") as conf:
        conf.write(f"<web>\n  token-file {tmp_path / 'web.token'}\n</web>\n")
    open_database(f"zodb:{path}").close()  # the schema, installed once
    command = [PYTHON, "-m", "dispatch.cli", "web", "-C", path]
    made = subprocess.run(
        [*command, "--new-token"], capture_output=True, env=environment(Direct(""))
    )
    assert made.returncode == 0, made.stderr
    process = subprocess.Popen(
        [*command, "--bind", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(Direct("")),
    )
    try:
        line = process.stdout.readline()
        found = re.search(r"serving the console at http://127\.0\.0\.1:(\d+)/", line)
        assert found, line + process.stderr.read()
        connection = http.client.HTTPConnection("127.0.0.1", int(found.group(1)))
        connection.request("GET", "/metrics")
        metrics = connection.getresponse().read().decode()
        assert "zeo_up 1.0" in metrics and "dispatch_" in metrics, metrics
        connection.request("GET", "/api/zeo")
        reply = connection.getresponse()
        assert reply.status == 404 and b"opens the database directly" in reply.read()
        connection.close()
    finally:
        process.send_signal(signal.SIGTERM)
        _output, errors = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, errors
