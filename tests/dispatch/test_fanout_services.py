"""Topics and recipe chaining with real processes on a real runzeo: two
unchanged python-workflows services (real zocalo's ``zocalo.service -t
zeo``) on one topic each get every message, one killed with SIGKILL and
started again gets what was sent meanwhile; dispatch's own Dispatcher
starts the recipes requested on ``processing_recipe`` by real workflows'
transport API and by ``dispatch go``, through a site's filter."""

import json
import os
import signal
import subprocess

import pytest

from dispatch.state import model, topics
from dispatch.state.database import dispatch_state
from tests.conftest import PYTHON
from tests.dispatch.test_workflows_transport import (
    RECIPE,
    SITE,
    TIMEOUT,
    ZOCALO_CONFIG,
    ZocaloService,
    dispatch,
    environment,
    pending,
    zocalo,
)
from tests.support.peers import require_peer
from tests.support.polling import wait_until


@pytest.fixture
def peer():
    return require_peer("workflows")


class Started:
    """A command in a session of its own (so SIGKILL reaches the service
    process that ``zocalo.service`` forks, too), logging to a file."""

    def __init__(self, command, env, path):
        self.path = path
        self.log = open(path, "a")
        self.process = subprocess.Popen(
            command,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def output(self):
        return self.path.read_text()

    def kill(self):
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=TIMEOUT)
        self.log.close()

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def listener(runzeo, peer, tmp_path, name):
    command = [PYTHON, str(peer / "bin" / "zocalo.service"), "-s", "Listener"]
    command += ["-t", "zeo", "--zeo", runzeo.address_text, "--zeo-poll", "0.05"]
    env = dict(environment(runzeo, peer), LISTENER_NAME=name)
    return Started(command, env, tmp_path / f"listener-{name}.log")


def heard(database):
    """``{(listener, durable): [message, ...]}`` reported on queue heard."""
    found = {}
    for _run, _node, payload, _header in pending(database, "heard"):
        key = (payload["by"], payload["durable"])
        found.setdefault(key, []).append(payload["message"])
    return found


class Broadcaster:
    """One workflows program that broadcasts on topic ``fanout`` what it is
    given (one process for all: starting python-workflows takes a while)."""

    def __init__(self, runzeo, peer):
        self.process = subprocess.Popen(
            [PYTHON, str(SITE / "broadcaster.py"), "fanout"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=environment(runzeo, peer),
        )

    def __call__(self, body):
        self.process.stdin.write(json.dumps(body) + "\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline() == "sent\n"

    def close(self):
        self.process.stdin.close()
        assert self.process.wait(timeout=TIMEOUT) == 0


def wait_heard(database, expected, what):
    """Wait until every ``(listener, durable)`` of *expected* reported (at
    least) its messages; returns what was heard."""

    def done():
        found = heard(database)
        return (
            all(
                all(m in found.get(key, []) for m in messages)
                for key, messages in expected.items()
            )
            and found
        )

    return wait_until(done, TIMEOUT, message=what)


def subscribed(database):
    with dispatch_state(database) as state:
        return sorted(s.name for s in topics.subscriptions(state, "fanout"))


def test_every_listener_gets_every_message_and_a_killed_one_catches_up(
    runzeo, peer, tmp_path
):
    import zeo

    database = zeo.DB(runzeo.address)
    listeners = {name: listener(runzeo, peer, tmp_path, name) for name in "ab"}
    # A dispatch service on the same topic, beside the workflows ones.
    heard_file = tmp_path / "heard.jsonl"
    listeners["dispatch"] = Started(
        [PYTHON, "-m", "dispatch.cli", "service", "tests.dispatch.services:Heard"],
        dict(environment(runzeo, peer), HEARD_FILE=str(heard_file)),
        tmp_path / "heard.log",
    )
    broadcast = Broadcaster(runzeo, peer)
    try:
        wait_until(lambda: subscribed(database) == ["a", "b", "dispatch"], TIMEOUT)
        broadcast({"m": 1})
        both_durable = {("a", True): [{"m": 1}], ("b", True): [{"m": 1}]}
        wait_heard(database, both_durable, "m1 by both, durably")
        broadcast({"m": 2})
        everyone = {(n, d): [{"m": 2}] for n in "ab" for d in (True, False)}
        wait_heard(database, everyone, "m2 by both subscriptions of both")

        listeners["b"].kill()
        broadcast({"m": 3})
        recipe_path = tmp_path / "to-topic.json"
        recipe_path.write_text(
            json.dumps({"1": {"topic": "fanout"}, "start": [[1, {"m": 4}]]})
        )
        went = dispatch(runzeo, peer, "go", recipe_path)
        assert went.returncode == 0, went.stderr
        run_id = went.stdout.split()[-1]
        meanwhile = [{"m": 3}, {"m": 4}]
        wait_heard(database, {("a", True): meanwhile, ("a", False): meanwhile}, "a")
        assert {"m": 3} not in heard(database).get(("b", True), [])

        listeners["b"] = listener(runzeo, peer, tmp_path, "b")
        wait_heard(database, {("b", True): meanwhile}, "b catches up after restart")
        broadcast({"m": 5})
        after = {(n, d): [{"m": 5}] for n in "ab" for d in (True, False)}
        found = wait_heard(database, after, "m5 by everyone")

        def dispatch_heard_all():
            return heard_file.exists() and len(heard_file.read_text().split()) >= 5

        wait_until(dispatch_heard_all, TIMEOUT, message="the dispatch service heard 5")
    finally:
        broadcast.close()
        for started in listeners.values():
            started.stop()
    try:
        # Each durable subscriber got each message exactly once; the
        # non-durable one of b missed what was sent while it was down.
        for name in "ab":
            assert sorted(found[(name, True)], key=str) == [
                {"m": n} for n in range(1, 6)
            ]
        assert {"m": 3} not in found[("b", False)]
        assert {"m": 4} not in found[("b", False)]
        dispatched = [json.loads(line) for line in heard_file.read_text().splitlines()]
        assert sorted(dispatched, key=str) == [{"m": n} for n in range(1, 6)]
        with dispatch_state(database) as state:
            run = state.runs[run_id]
            assert run.status == model.SUCCEEDED
            # Acknowledged copies left the run; the subscriptions' queues
            # hold nothing.
            assert len(run.messages) == 0 and run.steps[1].acknowledged == 3
            for name in ("a", "b", "dispatch"):
                assert state.queues[f"fanout@{name}"].pending_count() == 0
    finally:
        database.close()
    for started in listeners.values():
        assert "Traceback" not in started.output(), started.output()


REQUESTER = """
import json, sys
import workflows.transport
transport = workflows.transport.lookup("zeo")()
assert transport.connect()
for text in sys.argv[1:]:
    transport.send("processing_recipe", json.loads(text))
transport.disconnect()
"""


def test_dispatchs_own_dispatcher_starts_requested_recipes(runzeo, peer, tmp_path):
    import zeo

    recipes = tmp_path / "recipes"
    recipes.mkdir()
    start = {"note": "{note}", "run": "{guid}", "site": "{site}"}
    (recipes / "recorder.json").write_text(json.dumps(dict(RECIPE, start=[[1, start]])))
    env = dict(environment(runzeo, peer), DISPATCH_RECIPES=str(recipes))
    database = zeo.DB(runzeo.address)
    dispatcher = Started(
        [PYTHON, "-m", "dispatch.cli", "service"]
        + ["dispatch.runtime.dispatcher:Dispatcher"],
        env,
        tmp_path / "dispatcher.log",
    )
    recorder = ZocaloService(runzeo, peer, tmp_path)
    try:
        requests = [
            {"recipes": ["recorder"], "parameters": {"note": "hi", "guid": "wf-1"}},
            {"recipes": ["missing"]},
            {"recipes": ["recorder"], "parameters": {"refuse": True}},
            {"recipes": ["recorder"], "parameters": "not a dict"},
            {"custom_recipe": {"1": {"queue": "x"}}},
        ]
        sent = subprocess.run(
            [PYTHON, "-c", REQUESTER, *map(json.dumps, requests)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=env,
        )
        assert sent.returncode == 0, sent.stderr
        chain = tmp_path / "chain.json"
        request = {
            "recipes": ["recorder"],
            "parameters": {"note": "go", "guid": "go-1"},
        }
        chain.write_text(
            json.dumps({"1": {"queue": "processing_recipe"}, "start": [[1, request]]})
        )
        went = dispatch(runzeo, peer, "go", chain)
        assert went.returncode == 0, went.stderr
        # zocalo's own client, as a site sends today (no guid: one is made).
        config = tmp_path / "zocalo.yaml"
        config.write_text(ZOCALO_CONFIG.format(recipes=recipes))
        zocalo(
            runzeo, peer, "zocalo.go", "-n", "-r", "recorder", "-s", "note=zocalo",
            DISPATCH_RECIPES=str(recipes), ZOCALO_CONFIG=str(config),
        )  # fmt: skip

        def recorded():
            found = {r: p for r, _n, p, _h in pending(database, "recorded")}
            return len(found) == 3 and found

        found = wait_until(recorded, TIMEOUT, message="three chained runs recorded")
        [zocalo_run] = set(found) - {"wf-1", "go-1"}
        site = "tagged by the site filter"
        assert found == {
            run: {"seen": {"note": note, "run": run, "site": site}, "by": "Recorder"}
            for run, note in (("wf-1", "hi"), ("go-1", "go"), (zocalo_run, "zocalo"))
        }

        def dead():
            with dispatch_state(database) as state:
                letters = [
                    m
                    for m in state.dead_letters.values()
                    if m.queue == "processing_recipe"
                ]
                return len(letters) == 3 and letters

        letters = wait_until(dead, TIMEOUT, message="three bad requests dead-lettered")
        reasons = sorted(m.reason for m in letters)
        assert all(m.deliveries == 1 for m in letters)  # at once, not 5 times
        for expected in (
            "no recipe 'missing' in",
            "parameters not given as a dictionary",
            "Invalid recipe",
        ):
            assert any(expected in reason for reason in reasons), (expected, reasons)

        # A filter that raises may succeed later: delivered again, as a nack.
        def refused_twice():
            with dispatch_state(database) as state:
                return [
                    m.reason
                    for run in state.runs.values()
                    for m in run.messages.values()
                    if m.queue == "processing_recipe" and m.deliveries >= 2
                ]

        [reason] = wait_until(refused_twice, TIMEOUT, message="a redelivery")
        assert "filter tag failed: ValueError('this site refuses the request')" in (
            reason
        )
        with dispatch_state(database) as state:
            assert state.runs["wf-1"].name == "recorder"
            assert state.runs["go-1"].status == model.RUNNING  # step 2 waits
    finally:
        dispatcher.stop()
        recorder.stop()
        database.close()
    assert "Traceback" not in recorder.output(), recorder.output()


SUBSCRIBER = """
import json
import workflows.transport
transport = workflows.transport.lookup("zeo")()
assert transport.connect()
kept = transport.subscribe_broadcast("fanout", print, durable="kept")
gone = transport.subscribe_broadcast("fanout", print, durable="gone")
try:
    transport.subscribe_broadcast("fanout", print, durable="a@b")
except ValueError as error:
    refused = str(error)
transport.unsubscribe(kept)
transport.unsubscribe(gone, delete=True)
transport.disconnect()
print(json.dumps(refused))
"""


def test_a_workflows_subscriber_deletes_its_subscription(runzeo, peer):
    import zeo

    done = subprocess.run(
        [PYTHON, "-c", SUBSCRIBER],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=environment(runzeo, peer),
    )
    assert done.returncode == 0, done.stderr
    assert "may not contain '@'" in json.loads(done.stdout.splitlines()[-1])
    database = zeo.DB(runzeo.address)
    try:
        # Unsubscribing keeps a durable subscription; delete=True ends it.
        assert subscribed(database) == ["kept"]
    finally:
        database.close()
