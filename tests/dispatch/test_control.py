"""Cancel and retry on a real zeo server: broker operations, and the
``dispatch cancel``/``retry`` commands as processes on runzeo."""

import subprocess

import zeo
from dispatch.runtime.consumer import Consumer
from dispatch.state import admin, model
from dispatch.state.database import dispatch_state
from tests.conftest import PYTHON
from tests.dispatch.test_broker import NOW, read, start
from tests.dispatch.test_run_cli import environment

FAN = {
    "1": {"queue": "a", "output": 2},
    "2": {"queue": "b"},
    "start": [[1, "x"], [1, "y"]],
}


def test_cancel_withdraws_pending_and_drops_later_sends(zeo_database):
    run_id = start(zeo_database, FAN)
    consumer = Consumer(zeo_database, "a", lambda rw, p: rw.send(p))
    try:
        # Claim one message, cancel the run while "handling" it.
        def handle_and_cancel(rw, payload):
            with dispatch_state(zeo_database, write=True) as dispatch:
                admin.cancel_run(dispatch, dispatch.runs[run_id], NOW)
            rw.send(payload)

        consumer.handler = handle_and_cancel
        message = consumer.process_one(NOW)
        assert message.state == model.DONE
        assert consumer.process_one(NOW) is None
    finally:
        consumer.close()
    # The handler's snapshot predates the cancel, so its send was committed;
    # the message is withdrawn when it reaches its queue instead of handled.
    handled = []
    downstream = Consumer(zeo_database, "b", lambda rw, p: handled.append(p))
    try:
        assert downstream.process_one(NOW) is None
    finally:
        downstream.close()
    assert handled == []

    def check(dispatch):
        run = dispatch.runs[run_id]
        assert run.status == model.CANCELLED
        states = sorted(m.state for m in run.messages.values())
        assert states == [model.CANCELLED_MESSAGE] * 2 + [model.DONE]
        assert run.steps[2].status(run) == model.CANCELLED_MESSAGE
        assert run.open_count() == 0
        assert dispatch.queues["a"].pending_count() == 0
        assert dispatch.queues["b"].pending_count() == 0

    read(zeo_database, check)


def test_retry_sends_dead_letters_again_and_the_run_can_succeed(zeo_database):
    run_id = start(zeo_database, {"1": {"queue": "a"}, "start": [[1, "p"]]})

    def fail(rw, payload):
        raise RuntimeError("broken")

    consumer = Consumer(zeo_database, "a", fail, max_deliveries=1)
    try:
        assert consumer.process_one(NOW).state == model.DEAD
        with dispatch_state(zeo_database, write=True) as dispatch:
            run = dispatch.runs[run_id]
            assert run.status == model.FAILED
            (revived,) = admin.retry_dead(dispatch, run, node=1, now=NOW)
            assert admin.retry_dead(dispatch, run, now=NOW) == []
        consumer.handler = lambda rw, payload: None
        assert consumer.process_one(NOW).state == model.DONE
    finally:
        consumer.close()

    def check(dispatch):
        run = dispatch.runs[run_id]
        assert run.status == model.SUCCEEDED
        assert dispatch.dead_count() == 0 and len(dispatch.dead_letters) == 0
        old = [m for m in run.messages.values() if m.state == model.DEAD]
        assert old[0].reinjected_as

    read(zeo_database, check)


def dispatch_command(runzeo, *arguments):
    return subprocess.run(
        [PYTHON, "-m", "dispatch.cli", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(runzeo),
    )


def test_cancel_and_retry_commands(runzeo):
    database = zeo.DB(runzeo.address)
    try:
        run_id = start(database, FAN, now=None)
    finally:
        database.close()
    nothing = dispatch_command(runzeo, "retry", run_id)
    assert nothing.returncode == 1 and "no dead letters" in nothing.stdout
    drained = dispatch_command(runzeo, "drain", "a", "parking")
    assert drained.returncode == 0, drained.stderr
    assert "2 message(s) moved from a" in drained.stdout
    cancelled = dispatch_command(runzeo, "cancel", run_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert "2 pending message(s) withdrawn" in cancelled.stdout
    assert "cancelled" in dispatch_command(runzeo, "show", run_id).stdout
    refused = dispatch_command(runzeo, "retry", run_id)
    assert refused.returncode == 1 and "is cancelled" in refused.stderr
    missing = dispatch_command(runzeo, "cancel", "nosuchrun")
    assert missing.returncode == 1 and "no run" in missing.stderr


def test_drain_moves_pending_messages_and_back(zeo_database):
    run_id = start(zeo_database, FAN)
    with dispatch_state(zeo_database, write=True) as dispatch:
        moved = admin.drain(dispatch, "a", "parking", now=NOW)
        assert len(moved) == 2
        assert admin.drain(dispatch, "nosuchqueue", "x") == []
    handled = []
    consumer = Consumer(zeo_database, "a", lambda rw, p: handled.append(p))
    try:
        assert consumer.process_one(NOW) is None  # nothing left on "a"
        with dispatch_state(zeo_database, write=True) as dispatch:
            back = admin.drain(dispatch, "parking", ".", now=NOW)
            assert sorted(m.queue for m in back) == ["a", "a"]
        assert consumer.process_one(NOW) is not None
        assert consumer.process_one(NOW) is not None
    finally:
        consumer.close()
    assert sorted(handled) == ["x", "y"]

    def check(dispatch):
        assert dispatch.queues["parking"].pending_count() == 0
        assert dispatch.queues["a"].pending_count() == 0
        run = dispatch.runs[run_id]
        assert run.steps[1].status(run) == model.DONE

    read(zeo_database, check)


def test_shutdown_stops_a_running_service_process(runzeo):
    from tests.dispatch.test_run_cli import ServiceProcess

    service = ServiceProcess(runzeo, "Upper")
    try:
        asked = dispatch_command(runzeo, "shutdown", "upper")
        assert asked.returncode == 0, asked.stderr
        assert "asked Upper (instance" in asked.stdout
        # The service's watch on its instance record stops it.
        assert service.process.wait(60) == 0
    finally:
        service.stop()
    again = dispatch_command(runzeo, "shutdown", "--all")
    assert again.returncode == 1
    assert "no running service instance matched" in again.stdout
    assert dispatch_command(runzeo, "shutdown").returncode == 2

    database = zeo.DB(runzeo.address)
    try:
        with dispatch_state(database) as dispatch:
            (instance,) = admin.instances_of(dispatch).values()
            assert instance.stopped is not None
            assert instance.pid == service.process.pid
    finally:
        database.close()


def test_drain_one_at_a_time_with_wait(runzeo):
    database = zeo.DB(runzeo.address)
    try:
        start(database, FAN, now=None)
        with dispatch_state(database, write=True) as dispatch:
            # limit=1 (what --wait does per step) moves the oldest only.
            assert [m.payload for m in admin.drain(dispatch, "a", "b", limit=1)] == [
                "x"
            ]
            admin.drain(dispatch, "b", "a")
        paced = dispatch_command(runzeo, "drain", "a", "parking", "--wait", "0.05")
        assert paced.returncode == 0, paced.stderr
        lines = paced.stdout.splitlines()
        assert len(lines) == 3 and lines[-1] == "2 message(s) moved from a"
        assert all(line.endswith("-> parking") for line in lines[:2])
        with dispatch_state(database) as dispatch:
            assert dispatch.queues["parking"].pending_count() == 2
        for bad in ("-1", "soon", "nan"):
            refused = dispatch_command(runzeo, "drain", "a", "b", "--wait", bad)
            assert refused.returncode == 2 and "--wait" in refused.stderr
            refused = dispatch_command(runzeo, "dlq-reinject", "f", "-w", bad)
            assert refused.returncode == 2 and "--wait" in refused.stderr
    finally:
        database.close()


def test_status_lists_running_service_instances(runzeo):
    database = zeo.DB(runzeo.address)
    try:
        with dispatch_state(database, write=True) as dispatch:
            running = admin.register_instance(dispatch, "Greeter", "greet", pid=4242)
            gone = admin.register_instance(dispatch, "Counter", "count", pid=4343)
            gone.stopped = gone.started
            running_id = running.id
        listed = dispatch_command(runzeo, "status")
        assert listed.returncode == 0, listed.stderr
        rows = [line.split() for line in listed.stdout.splitlines()]
        assert rows[0][0] == "SERVICE"
        assert [(r[0], r[2], r[3]) for r in rows[1:]] == [
            ("Greeter", "4242", "running")
        ]
        with dispatch_state(database, write=True) as dispatch:
            admin.instances_of(dispatch)[running_id].stop_requested = 1.0
        stopping = dispatch_command(runzeo, "status").stdout.splitlines()[1].split()
        assert stopping[3] == "stopping"
    finally:
        database.close()
