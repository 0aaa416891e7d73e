"""The dispatch CLI as real processes on a real runzeo server: go --wait
through two service processes, list/show, and the dead-letter loop
(check, purge to files, re-inject, run succeeds)."""

import json
import os
import signal
import subprocess
from pathlib import Path

import zeo
from dispatch.cli.go import wait_for_run
from dispatch.state import model
from dispatch.state.database import dispatch_state
from tests.conftest import PYTHON

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60

PIPELINE = {
    "description": "upper-case a text, then collect it",
    "1": {"service": "Upper", "queue": "upper", "output": 2},
    "2": {"service": "Collect", "queue": "collect"},
    "start": [[1, {"text": "{text}"}]],
}
POISONED = {
    "1": {"service": "Poison", "queue": "poison", "output": 2},
    "2": {"queue": "collect"},
    "start": [[1, {"text": "x"}]],
}


def environment(runzeo):
    return dict(
        os.environ,
        PYTHONPATH=f"{ROOT / 'src'}:{ROOT}",
        DISPATCH_ZEO=runzeo.address_text,
    )


def dispatch(runzeo, *arguments, input=None):
    return subprocess.run(
        [PYTHON, "-m", "dispatch.cli", *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=environment(runzeo),
        input=input,
    )


class ServiceProcess:
    """``dispatch service tests.dispatch.services:NAME`` until stop()."""

    def __init__(self, runzeo, name, *extra):
        self.process = subprocess.Popen(
            [PYTHON, "-m", "dispatch.cli", "service", f"tests.dispatch.services:{name}"]
            + list(extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(runzeo),
        )
        line = self.process.stdout.readline()
        assert "ready on queue" in line, line + self.process.stderr.read()

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        _, errors = self.process.communicate(timeout=TIMEOUT)
        return self.process.returncode, errors


def go_through_two_services(runzeo, directory, text="hello"):
    """``go --wait`` of PIPELINE through an Upper and a Collect service
    process: (the completed ``go``, each service's (exit code, stderr))."""
    recipe = directory / "pipeline.json"
    recipe.write_text(json.dumps(PIPELINE))
    services = [ServiceProcess(runzeo, "Upper"), ServiceProcess(runzeo, "Collect")]
    try:
        completed = dispatch(runzeo, "go", recipe, "-p", f"text={text}", "--wait")
    finally:
        stopped = [service.stop() for service in services]
    return completed, stopped


def test_go_wait_through_two_services_then_list_and_show(runzeo, tmp_path):
    completed, stopped = go_through_two_services(runzeo, tmp_path)
    assert completed.returncode == 0, completed.stderr
    run_id = completed.stdout.splitlines()[0]
    assert f"run {run_id}: succeeded" in completed.stdout
    assert "step 2: done" in completed.stdout
    assert [code for code, _ in stopped] == [0, 0], stopped

    listing = dispatch(runzeo, "list")
    assert listing.returncode == 0
    assert run_id in listing.stdout and "succeeded" in listing.stdout
    # dispatch go recorded the recipe's name; list filters on it.
    named = dispatch(runzeo, "list", "--recipe", "pipeline", "--age", "1h", "--json")
    assert named.returncode == 0, named.stderr
    (row,) = json.loads(named.stdout)["runs"]
    assert (row["run"], row["name"], row["status"]) == (run_id, "pipeline", "succeeded")
    other = dispatch(runzeo, "list", "--state", "running", "--json")
    assert json.loads(other.stdout)["runs"] == []
    bad_age = dispatch(runzeo, "list", "--age", "soon")
    assert bad_age.returncode == 2 and "for example 90s" in bad_age.stderr

    shown = dispatch(runzeo, "show", run_id, "--json")
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["status"] == "succeeded"
    step_two = document["steps"][1]
    assert step_two["messages"][0]["payload"] == {"text": "HELLO"}
    attempt = step_two["messages"][0]["attempts"][0]
    assert attempt["outcome"] == "done" and attempt["pid"]
    text = dispatch(runzeo, "show", run_id)
    assert "step 1 (Upper): done" in text.stdout

    missing = dispatch(runzeo, "show", "nosuchrun")
    assert missing.returncode == 1
    assert "no run 'nosuchrun'" in missing.stderr


def test_bad_recipe_and_unreachable_server_exit_codes(runzeo, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"1": {}, "2": {}, "start": [[1, {}]]}))
    completed = dispatch(runzeo, "go", bad)
    assert completed.returncode == 2
    assert 'unreferenced node "2"' in completed.stderr
    assert dispatch(runzeo, "go", tmp_path / "absent.json").returncode == 2
    assert dispatch(runzeo, "list", "--zeo", "").returncode == 2


def test_dead_letter_purge_and_reinject(runzeo, tmp_path):
    recipe = tmp_path / "poisoned.json"
    recipe.write_text(json.dumps(POISONED))
    poison = ServiceProcess(runzeo, "Poison")
    try:
        completed = dispatch(runzeo, "go", recipe, "--wait")
    finally:
        assert poison.stop()[0] == 0
    assert completed.returncode == 1, completed.stderr
    run_id = completed.stdout.splitlines()[0]
    assert f"run {run_id} failed" in completed.stderr

    check = dispatch(runzeo, "dlq-check")
    assert check.returncode == 1
    assert "poison: 1" in check.stdout
    assert "Total of 1 dead letter(s) found" in check.stdout

    location = tmp_path / "DLQ"
    purged = dispatch(runzeo, "dlq-purge", "--location", location)
    assert purged.returncode == 0, purged.stderr
    (path,) = purged.stdout.split()
    document = json.loads(Path(path).read_text())
    assert document["message"]["recipe-pointer"] == 1
    assert document["message"]["payload"] == {"text": "x"}
    assert "after 5 deliveries" in document["header"]["reason"]
    assert dispatch(runzeo, "dlq-check").returncode == 0

    # The "fix": Collect-like healing by consuming the poison queue with
    # the Upper service, which forwards to step 2 (collect).
    reinjected = dispatch(runzeo, "dlq-reinject", "--remove", input=path + "\n")
    assert reinjected.returncode == 0, reinjected.stderr
    assert not Path(path).exists()
    again = dispatch(runzeo, "dlq-reinject", path)
    assert again.returncode == 1 and "not re-injected" in again.stderr

    healers = [
        ServiceProcess(runzeo, "Upper", "--queue", "poison"),
        ServiceProcess(runzeo, "Collect"),
    ]
    database = zeo.DB(runzeo.address)
    try:
        status = wait_for_run(database, run_id, TIMEOUT, open(os.devnull, "w"))
        with dispatch_state(database) as state:
            run = state.runs[run_id]
            dead = [m for m in run.messages.values() if m.state == model.DEAD]
            assert len(dead) == 1 and dead[0].reinjected_as
    finally:
        database.close()
        for healer in healers:
            healer.stop()
    assert status == model.SUCCEEDED


def test_go_dry_run_shows_the_start_messages_and_sends_nothing(runzeo, tmp_path):
    recipe = tmp_path / "pipeline.json"
    recipe.write_text(json.dumps(PIPELINE))
    shown = dispatch(runzeo, "go", recipe, "-p", "text=hi", "--dry-run")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].endswith("(dry run: nothing sent)")
    assert lines[1:] == ['step 1 -> queue upper: {"text": "hi"}']
    database = zeo.DB(runzeo.address)
    try:
        with dispatch_state(database) as state:
            assert list(state.runs) == [] and list(state.queues) == []
    finally:
        database.close()
    # Bad input is refused as without --dry-run; --wait makes no sense with it.
    bad = tmp_path / "bad.json"
    bad.write_text('{"1": {"queue": "q"}, "start": [[2, {}]]}')
    assert dispatch(runzeo, "go", bad, "--dry-run").returncode == 2
    both = dispatch(runzeo, "go", recipe, "--dry-run", "--wait")
    assert both.returncode == 2 and "--dry-run" in both.stderr
    # A step with a topic (and a queue) shows both destinations.
    fanned = tmp_path / "fanned.json"
    fanned.write_text(
        json.dumps({"1": {"queue": "q", "topic": "news"}, "start": [[1, {"n": 1}]]})
    )
    shown = dispatch(runzeo, "go", fanned, "--dry-run")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[1:] == [
        'step 1 -> queue q: {"n": 1}',
        'step 1 -> topic news (each durable subscriber): {"n": 1}',
    ]


def test_service_liveness_file_is_touched_while_idle(runzeo, tmp_path):
    from tests.support.polling import wait_until

    alive = tmp_path / "alive"
    service = ServiceProcess(
        runzeo, "Upper", "--liveness", alive, "--liveness-interval", "0.05"
    )
    try:
        first = wait_until(lambda: alive.exists() and alive.stat().st_mtime_ns, TIMEOUT)
        wait_until(lambda: alive.stat().st_mtime_ns > first, TIMEOUT)
    finally:
        code, errors = service.stop()
    assert code == 0, errors
    refused = dispatch(
        runzeo, "service", "tests.dispatch.services:Upper", "--liveness",
        tmp_path / "no" / "such" / "dir" / "alive",
    )  # fmt: skip
    assert refused.returncode == 2 and "--liveness" in refused.stderr


def test_json_lines_logs_carry_run_id_and_step(runzeo, tmp_path):
    recipe = tmp_path / "poisoned.json"
    recipe.write_text(json.dumps(POISONED))
    service = subprocess.Popen(
        [PYTHON, "-m", "dispatch.cli", "service", "tests.dispatch.services:Poison"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(environment(runzeo), DISPATCH_LOG_FORMAT="json"),
    )
    try:
        assert "ready on queue" in service.stdout.readline()
        completed = dispatch(runzeo, "go", recipe, "--wait", "--timeout", TIMEOUT)
        assert completed.returncode == 1, completed.stderr  # dead-lettered
        run_id = completed.stdout.split()[0]
    finally:
        service.send_signal(signal.SIGTERM)
        _, errors = service.communicate(timeout=TIMEOUT)
    records = [json.loads(line) for line in errors.splitlines() if line.strip()]
    failures = [r for r in records if r["level"] == "ERROR"]
    assert len(failures) == 5  # one per delivery, then dead
    for record in failures:
        assert record["run_id"] == run_id and record["step"] == 1
        assert record["command"] == "dispatch service"
        assert "RuntimeError: cannot handle" in record["traceback"]
        assert record["time"].endswith("Z")
