"""An unchanged python-workflows service (tests/dispatch/data/workflows_site,
installed as a site installs one: a package with a ``workflows.services``
entry point) run by real zocalo's ``zocalo.service -t zeo`` on a real
runzeo: it consumes what ``dispatch go`` starts and what another workflows
program sends, and its effects are read back from zeo."""

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from dispatch.state import model
from dispatch.state import transport as messages
from dispatch.state.database import dispatch_state
from tests.conftest import PYTHON
from tests.support.peers import require_peer
from tests.support.polling import wait_until

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(__file__).parent / "data" / "workflows_site"
TIMEOUT = 60

RECIPE = {
    "1": {"service": "Recorder", "queue": "recorder", "output": {"done": 2}},
    "2": {"queue": "recorded"},
    "start": [[1, {"n": 1}]],
}


@pytest.fixture
def peer():
    return require_peer("workflows")


def environment(runzeo, peer):
    return dict(
        os.environ,
        PYTHONPATH=f"{SITE}:{peer}:{ROOT / 'src'}:{ROOT}",
        DISPATCH_ZEO=runzeo.address_text,
    )


def dispatch(runzeo, peer, *arguments):
    return subprocess.run(
        [PYTHON, "-m", "dispatch.cli", *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=environment(runzeo, peer),
    )


def zocalo(runzeo, peer, tool, *arguments, **settings):
    """Real zocalo's command *tool* (``zocalo.go`` ...) on the zeo
    transport, with *settings* added to its environment; must succeed."""
    done = subprocess.run(
        [PYTHON, str(peer / "bin" / tool), *arguments]
        + ["-t", "zeo", "--zeo", runzeo.address_text],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=dict(environment(runzeo, peer), **settings),
    )
    assert done.returncode == 0, done.stdout + done.stderr


class ZocaloService:
    """``zocalo.service -s NAME -t zeo`` (real zocalo) until stop()."""

    def __init__(self, runzeo, peer, tmp_path, name="Recorder", **extra_environment):
        self.path = tmp_path / f"zocalo-service-{name}.log"
        self.log = open(self.path, "w")
        self.process = subprocess.Popen(
            [PYTHON, str(peer / "bin" / "zocalo.service"), "-s", name]
            + ["-t", "zeo", "--zeo", runzeo.address_text, "--zeo-poll", "0.05"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=dict(environment(runzeo, peer), **extra_environment),
        )

    def output(self):
        return self.path.read_text()

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=TIMEOUT)
        self.log.close()


def pending(database, queue_name):
    """``[(run id, node, payload, header)]`` of *queue_name*'s pending messages."""
    with dispatch_state(database) as state:
        queue = state.queues.get(queue_name)
        if queue is None:
            return []
        return [
            (m.run_id, m.node, m.payload, dict(m.workflows_header or {}))
            for m in queue.ready.values()
            if m.state == model.PENDING
        ]


def test_unchanged_workflows_service_on_zeo(runzeo, peer, tmp_path):
    import zeo

    database = zeo.DB(runzeo.address)
    service = ZocaloService(runzeo, peer, tmp_path)
    try:
        recipe_path = tmp_path / "recipe.json"
        recipe_path.write_text(json.dumps(RECIPE))
        started = dispatch(runzeo, peer, "go", recipe_path)
        assert started.returncode == 0, started.stderr
        run_id = started.stdout.split()[-1]

        sent = subprocess.run(
            [PYTHON, str(SITE / "sender.py"), json.dumps(RECIPE), "sender-run"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=environment(runzeo, peer),
        )
        assert sent.returncode == 0, sent.stderr

        def both_recorded():
            found = pending(database, "recorded")
            return len(found) == 2 and found

        recorded = wait_until(
            both_recorded, TIMEOUT, message="two messages on queue recorded"
        )
        by_run = {run: (node, payload) for run, node, payload, _h in recorded}
        expected = (2, {"seen": {"n": 1}, "by": "Recorder"})
        assert by_run == {run_id: expected, "sender-run": expected}
        with dispatch_state(database) as state:
            for run in (run_id, "sender-run"):
                step_one = state.runs[run].steps[1]
                done = [state.runs[run].messages[i].state for i in step_one.message_ids]
                assert done == [model.DONE]

        answers = wait_until(
            lambda: pending(database, "plain.answers"), TIMEOUT, message="plain answer"
        )
        assert [payload for *_r, payload, _h in answers] == [
            {"answer": {"from": "sender"}}
        ]

        # Status broadcasts and the service's idle timer reach their topics.
        def broadcasts(topic):
            with dispatch_state(database) as state:
                return messages.broadcasts_after(state, topic, "")

        statuses = wait_until(lambda: broadcasts("transient.status"), TIMEOUT)
        assert any(body.get("workflows") for _k, _h, body in statuses)
        idles = wait_until(lambda: broadcasts("recorder.idle"), TIMEOUT)
        assert idles[0][2] == {"idle": True}

        # dispatch status lists it, as zocalo's status monitor would.
        listed = dispatch(runzeo, peer, "status")
        assert listed.returncode == 0, listed.stderr
        rows = [line.split() for line in listed.stdout.splitlines()[1:]]
        assert [row[0] for row in rows] == ["Recorder"]
        assert rows[0][2] == str(service.process.pid)
        assert rows[0][-1] == "ago"  # a heartbeat: "Ns ago"
    finally:
        service.stop()
        database.close()
    assert "Traceback" not in service.output(), service.output()


def test_services_sharing_a_queue_handle_each_message_once(runzeo, peer, tmp_path):
    """Three unchanged Recorder services race for the messages of one run:
    their claims conflict, and each message is still recorded exactly once,
    with every service alive at the end."""
    import zeo

    COUNT = 150

    recipe = dict(RECIPE, start=[[1, {"n": n}] for n in range(COUNT)])
    recipe_path = tmp_path / "recipe.json"
    recipe_path.write_text(json.dumps(recipe))
    services = []
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        services.append(ZocaloService(runzeo, peer, tmp_path / name))
    database = zeo.DB(runzeo.address)
    try:
        started = dispatch(runzeo, peer, "go", recipe_path)
        assert started.returncode == 0, started.stderr

        def all_recorded():
            found = pending(database, "recorded")
            return len(found) >= COUNT and found

        recorded = wait_until(all_recorded, TIMEOUT * 2, message=f"{COUNT} recorded")
        seen = sorted(payload["seen"]["n"] for _r, _n, payload, _h in recorded)
        assert seen == list(range(COUNT))
        assert [s.process.poll() for s in services] == [None] * 3, [
            s.output()[-2000:] for s in services
        ]
    finally:
        for service in services:
            service.stop()
        database.close()


def test_nack_abort_commit_and_bad_input(runzeo, peer):
    import zeo

    probed = subprocess.run(
        [PYTHON, str(SITE / "probe.py")],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 2,
        env=environment(runzeo, peer),
    )
    assert probed.returncode == 0, probed.stderr
    observed = json.loads(probed.stdout)
    assert "names no step" in observed["bad"]
    assert "not held" in observed["ack twice"]
    deliveries = observed["deliveries"]
    assert [d["count"] for d in deliveries] == [1, 2, 3]
    assert [d["redelivered"] for d in deliveries] == [False, True, True]
    assert all(d["message"] == {"n": 1} and d["origin"] == "probe" for d in deliveries)
    database = zeo.DB(runzeo.address)
    try:
        # Only the committed transaction's send is there, and the probe's
        # message is done after three deliveries.
        assert [p for *_r, p, _h in pending(database, "probe.out")] == [
            {"sent": "once"}
        ]
        assert pending(database, "probe") == []
        with dispatch_state(database) as state:
            probes = [
                m
                for run in state.runs.values()
                for m in run.messages.values()
                if m.queue == "probe"
            ]
        assert [(m.state, m.deliveries) for m in probes] == [(model.DONE, 3)]
    finally:
        database.close()


def test_a_commit_by_another_client_wakes_an_idle_subscription(runzeo, peer):
    """The listener polls once an hour: the message reaches it only through
    the zeo ``watch()`` that every commit fires."""
    import zeo

    database = zeo.DB(runzeo.address)
    listener = None
    try:
        with dispatch_state(database, write=True) as state:
            messages.send(state, "wake", None, {"n": 1})
        listener = subprocess.Popen(
            [PYTHON, str(SITE / "listener.py")],
            stdout=subprocess.PIPE,
            text=True,
            env=environment(runzeo, peer),
        )
        assert listener.stdout.readline().strip() == "subscribed"
        assert json.loads(listener.stdout.readline()) == {"n": 1}
        with dispatch_state(database, write=True) as state:
            messages.send(state, "wake", None, {"n": 2})
        assert json.loads(listener.stdout.readline()) == {"n": 2}
        assert listener.wait(timeout=TIMEOUT) == 0
    finally:
        if listener is not None and listener.poll() is None:
            listener.kill()
            listener.wait()
        database.close()


ZOCALO_CONFIG = """\
version: 1
storage:
  plugin: storage
  zocalo.recipe_directory: {recipes}
environments:
  default: [storage]
"""


def test_zocalo_go_through_zocalos_dispatcher_on_processing_recipe(
    runzeo, peer, tmp_path
):
    """Recipe chaining as zocalo sites do it: ``zocalo.go -r NAME`` sends a
    request to ``processing_recipe``, zocalo's own Dispatcher service loads
    the recipe from its recipe directory, substitutes the parameters and
    starts it; the Recorder handles step 1.  All on the zeo transport."""
    import zeo

    recipes = tmp_path / "recipes"
    recipes.mkdir()
    named = dict(RECIPE, start=[[1, {"note": "{note}", "run": "{guid}"}]])
    (recipes / "recorder.json").write_text(json.dumps(named))
    config = tmp_path / "zocalo.yaml"
    config.write_text(ZOCALO_CONFIG.format(recipes=recipes))
    settings = {"ZOCALO_CONFIG": str(config)}
    database = zeo.DB(runzeo.address)
    services = [
        ZocaloService(runzeo, peer, tmp_path, "Dispatcher", **settings),
        ZocaloService(runzeo, peer, tmp_path, "Recorder", **settings),
    ]
    try:
        zocalo(
            runzeo,
            peer,
            "zocalo.go",
            "-n",
            "-r",
            "recorder",
            "-s",
            "note=hi",
            **settings,
        )
        recorded = wait_until(
            lambda: pending(database, "recorded"), TIMEOUT, message="recorded"
        )
        [(run_id, node, payload, _header)] = recorded
        assert node == 2
        assert payload == {"seen": {"note": "hi", "run": run_id}, "by": "Recorder"}
        with dispatch_state(database) as state:
            # The request itself was a plain message, consumed (acked).
            requests = [
                m
                for run in state.runs.values()
                for m in run.messages.values()
                if m.queue == "processing_recipe"
            ]
            assert [m.state for m in requests] == [model.DONE]

        # zocalo.shutdown broadcasts on topic "command": the Dispatcher's
        # frontend hears it and stops; the Recorder goes on.
        zocalo(runzeo, peer, "zocalo.shutdown", "-s", "Dispatcher", **settings)
        wait_until(
            lambda: services[0].process.poll() is not None,
            TIMEOUT,
            message="the Dispatcher stopped",
        )
        assert services[1].process.poll() is None
    finally:
        for service in services:
            service.stop()
        database.close()
    for service in services:
        assert "Traceback" not in service.output(), service.output()
