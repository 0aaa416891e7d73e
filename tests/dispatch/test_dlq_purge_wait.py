"""``dispatch dlq-purge --wait`` on a real runzeo: a dead letter made while
it waits is purged (woken by zeo's ``watch()``), then it exits once the
wait passes with no more."""

import json
import subprocess
import threading

import zeo
from dispatch.runtime.consumer import Consumer
from tests.conftest import PYTHON
from tests.dispatch.conftest import wait_until
from tests.dispatch.test_broker import NOW, start
from tests.dispatch.test_run_cli import TIMEOUT, dispatch, environment

POISONED = {"1": {"queue": "poison"}, "start": [[1, {"n": 1}]]}
MAX_DELIVERIES = 5


def fail(recipe_wrapper, payload):
    raise RuntimeError(f"cannot handle {payload!r}")


def test_purge_wait_purges_a_dead_letter_that_arrives_while_waiting(runzeo, tmp_path):
    database = zeo.DB(runzeo.address)
    location = tmp_path / "DLQ"
    consumer = Consumer(
        database, "poison", fail, max_deliveries=MAX_DELIVERIES, backoff_base=0.0
    )
    purge = None
    try:
        run_id = start(database, POISONED)
        # One delivery short of a dead letter, before the purge starts.
        for _ in range(MAX_DELIVERIES - 1):
            assert consumer.process_one(NOW) is not None
        purge = subprocess.Popen(
            [PYTHON, "-m", "dispatch.cli", "dlq-purge", "--wait", "8"]
            + ["--location", str(location)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(runzeo),
        )
        assert purge.stderr.readline().startswith("waiting up to 8s")
        lines = []
        reader = threading.Thread(
            target=lambda: lines.extend(purge.stdout), daemon=True
        )
        reader.start()
        # The last delivery fails: a dead letter, while the purge waits.
        message = consumer.process_one(NOW)
        assert message is not None and message.deliveries == MAX_DELIVERIES
        wait_until(lambda: lines, message="the new dead letter to be purged")
        purge.wait(timeout=TIMEOUT)
        reader.join(TIMEOUT)
        assert purge.returncode == 0, purge.stderr.read()
    finally:
        consumer.close()
        if purge is not None and purge.poll() is None:
            purge.kill()
            purge.wait()
        database.close()
    (path,) = [line.strip() for line in lines]
    document = json.loads(open(path).read())
    assert document["header"]["run"] == run_id
    assert document["header"]["deliveries"] == MAX_DELIVERIES
    # Purged: nothing left for dlq-check, and nothing more written.
    assert dispatch(runzeo, "dlq-check").returncode == 0
    assert sorted(p.name for p in location.rglob("msg-*")) == [path.split("/")[-1]]


def test_purge_wait_refuses_a_bad_number(runzeo):
    refused = dispatch(runzeo, "dlq-purge", "--wait", "soon")
    assert refused.returncode == 2
    assert "'soon' is not a number of seconds" in refused.stderr


def test_dead_letter_commands_read_zeo_and_location_from_a_yaml_site(runzeo, tmp_path):
    site = tmp_path / "site.yaml"
    location = tmp_path / "site-dlq"
    site.write_text(
        "version: 1\n"
        f"dispatch: {{plugin: dispatch, zeo: '{runzeo.address_text}'}}\n"
        f"constants: {{plugin: storage, zocalo.dlq.purge_location: '{location}'}}\n"
        "environments: {live: [dispatch, constants]}\n"
    )
    database = zeo.DB(runzeo.address)
    consumer = Consumer(
        database, "poison", fail, max_deliveries=MAX_DELIVERIES, backoff_base=0.0
    )
    try:
        start(database, POISONED)
        for _ in range(MAX_DELIVERIES):
            assert consumer.process_one(NOW) is not None
    finally:
        consumer.close()
        database.close()
    # No $DISPATCH_ZEO: the address comes from the environment's section.
    env = environment(runzeo)
    del env["DISPATCH_ZEO"]

    def site_command(*arguments):
        return subprocess.run(
            [PYTHON, "-m", "dispatch.cli", *arguments, "-C", str(site), "-e", "live"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=env,
        )

    checked = site_command("dlq-check")
    assert checked.returncode == 1, checked.stderr
    assert "poison: 1" in checked.stdout
    purged = site_command("dlq-purge")
    assert purged.returncode == 0, purged.stderr
    (path,) = purged.stdout.split()
    assert path.startswith(str(location)) and (location / path).exists()
