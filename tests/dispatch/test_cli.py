"""The ``dispatch`` command: routing, and ``dispatch jobs`` on a FileStorage."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from dispatch.cli import main
from dispatch.jobs import DoJobber, DummyJob, Job
from dispatch.jobs.cli import jobs_main, parse_address
from tests.conftest import PYTHON, free_port


def test_unknown_command_says_so(capsys):
    assert main(["frobnicate"]) == 2
    error = capsys.readouterr().err
    assert "unknown command 'frobnicate'" in error and "jobs" in error


def test_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    assert "jobs" in capsys.readouterr().out
    assert main([]) == 2


def test_console_script_routes_to_jobs():
    script = Path(PYTHON).parent / "dispatch"
    assert script.exists(), "the dispatch console script is not installed"
    completed = subprocess.run(
        [str(script), "jobs", "--help"], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0
    assert "show" in completed.stdout and "graph" in completed.stdout
    completed = subprocess.run(
        [str(script), "recipes"], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 2
    assert "unknown command 'recipes'" in completed.stderr


def test_jobs_needs_a_database(capsys, monkeypatch):
    monkeypatch.delenv("DISPATCH_ZEO", raising=False)
    with pytest.raises(SystemExit, match="say which database"):
        jobs_main(["list"])
    # Through the command, naming no database is a usage error, as for
    # every other dispatch command.
    assert main(["jobs", "list"]) == 2
    assert "say which database" in capsys.readouterr().err


def test_parse_address():
    assert parse_address("127.0.0.1:8100") == ("127.0.0.1", 8100)
    assert parse_address(":8100") == ("127.0.0.1", 8100)
    assert parse_address("/run/zeo.sock") == "/run/zeo.sock"


@pytest.fixture
def recorded_file(tmp_path):
    """A FileStorage holding one finished run, closed again."""
    from ZODB import DB
    from ZODB.FileStorage import FileStorage

    path = tmp_path / "Data.fs"
    database = DB(FileStorage(str(path)))

    class Fails(Job):
        TRIES = 1

        def Check(self):
            raise ValueError("bad input file")

        def Run(self):
            pass

    top = type("Top", (DummyJob,), {"DEPS": [Fails]})
    dojob = DoJobber(db=database, run_name="nightly")
    dojob.configure(top, default_retry_delay=0)
    dojob.checknrun()
    database.close()
    return path


def test_show_from_a_file(recorded_file, capsys):
    assert jobs_main(["--file", str(recorded_file), "show", "nightly", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    jobs = {job["name"]: job for job in document["jobs"]}
    assert jobs["Fails"]["last_error"] == "ValueError: bad input file"
    assert jobs["Top"]["status"] == "blocked"


def test_graph_from_a_file_as_json(recorded_file, tmp_path):
    output = tmp_path / "graph.json"
    arguments = ["--file", str(recorded_file), "graph", "nightly"]
    assert jobs_main(arguments + ["--format", "json", "-o", str(output)]) == 0
    document = json.loads(output.read_text())
    assert {node["name"]: node["colour"] for node in document["nodes"]} == {
        "Top": "orange",
        "Fails": "red",
    }


def test_graph_svg_without_graphviz_fails_clearly(recorded_file, capsys, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    arguments = ["--file", str(recorded_file), "graph", "nightly", "--format", "svg"]
    assert jobs_main(arguments) == 1
    assert "graphviz" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz 'dot' not installed")
def test_graph_svg_command(recorded_file):
    completed = subprocess.run(
        [PYTHON, "-m", "dispatch.cli", "jobs", "--file", str(recorded_file)]
        + ["graph", "nightly", "--format", "svg"],
        capture_output=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert b"<svg" in completed.stdout and b"Fails" in completed.stdout


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no such FileStorage"):
        jobs_main(["--file", str(tmp_path / "absent.fs"), "list"])


def test_an_empty_database_has_no_runs(capsys):
    import zeo

    address, stop = zeo.server()
    try:
        text = "{}:{}".format(*address)
        assert jobs_main(["--zeo", text, "list"]) == 0
        assert capsys.readouterr().out == ""
        assert jobs_main(["--zeo", text, "show", "nothing"]) == 1
        assert "empty" in capsys.readouterr().err
    finally:
        stop()


def test_an_unreachable_server_is_a_clear_error(monkeypatch):
    from dispatch.jobs import cli

    monkeypatch.setattr(cli, "CONNECT_TIMEOUT", 1)
    with pytest.raises(SystemExit, match="cannot reach zeo"):
        jobs_main(["--zeo", f"127.0.0.1:{free_port()}", "list"])


def test_jobs_exits_3_for_an_unreachable_server_like_every_command(monkeypatch, capsys):
    from dispatch.cli import base

    monkeypatch.setattr(base, "CONNECT_TIMEOUT", 1)
    address = f"127.0.0.1:{free_port()}"
    assert main(["jobs", "--zeo", address, "list"]) == base.EXIT_UNREACHABLE == 3
    assert "dispatch jobs: cannot reach zeo" in capsys.readouterr().err
    assert main(["list", "--zeo", address]) == base.EXIT_UNREACHABLE


def test_every_command_naming_a_missing_run_exits_1(capsys):
    import zeo

    address, stop = zeo.server()
    try:
        text = "{}:{}".format(*address)
        for command, *step in (["show"], ["cancel"], ["retry"], ["retry", "1"]):
            arguments = [command, "--zeo", text, "nosuchrun", *step]
            assert main(arguments) == 1, arguments
            error = capsys.readouterr().err
            assert f"dispatch {command}: no run 'nosuchrun'" in error
    finally:
        stop()
