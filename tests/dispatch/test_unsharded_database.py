"""A database written before queues, runs and steps were split into shards
still opens and works: ``data/unsharded.fs`` was made by that code (see
``data/make_unsharded_database.py``), a copy is served by a real runzeo,
and today's consumers finish its runs; the old trees are read through and
emptied, new entries go to shards."""

import shutil
from pathlib import Path

import pytest

import zeo
from dispatch.runtime.consumer import Consumer
from dispatch.state import admin, broker, model
from dispatch.state.views import run_document
from tests.dispatch.conftest import RunzeoProcess, wait_until
from tests.dispatch.test_broker import read

DATA = Path(__file__).resolve().parent / "data" / "unsharded.fs"


@pytest.fixture
def old_database(tmp_path):
    """A zeo DB on a runzeo serving a copy of ``unsharded.fs``."""
    shutil.copy(DATA, tmp_path / "Data.fs")
    server = RunzeoProcess(tmp_path)
    database = zeo.DB(server.address)
    try:
        yield database
    finally:
        database.close()
        server.stop()


def drain(database, queue, handler):
    """Serve *queue* with *handler* until nothing is due or backing off."""
    consumer = Consumer(database, queue, handler, lease=30.0, backoff_base=0.01)
    try:

        def idle():
            if consumer.process_one() is not None:
                return False
            due = consumer.next_due()
            return due is None or due > 10  # only claims (30 s leases) left

        wait_until(idle, timeout=60, message=f"queue {queue} to drain")
    finally:
        consumer.close()


def test_the_old_layout_is_read_through(old_database):
    def check(dispatch):
        run = dispatch.runs["old-chain"]
        assert run.message_shards is None
        assert run.legacy_messages is not None
        assert len(run.messages) == 4
        assert [m.payload for m in run.steps[1].messages(run)] == [
            {"n": 0},
            {"n": 1},
            {"n": 2},
        ]
        states = [m.state for m in run.steps[1].messages(run)]
        assert states == [model.DONE, model.IN_PROGRESS, model.PENDING]
        queue = dispatch.queues["legacy"]
        assert queue.ready_shards is None
        assert len(queue.ready) == 4  # two pending, two claims (one finished)
        for key, message in queue.ready.items():
            assert queue.ready.get(key) is message
        document = run_document(dispatch, "old-chain")
        assert [step["status"] for step in document["steps"]] == [
            model.IN_PROGRESS,
            model.PENDING,
        ]
        assert dispatch.runs["old-poison"].status == model.FAILED
        assert len(dispatch.dead_letters) == 1

    read(old_database, check)


def test_old_runs_finish_and_the_old_trees_empty(old_database):
    seen = []

    def handler(rw, payload):
        seen.append(payload)
        if "n" in payload:
            rw.send({"from": payload["n"]})

    drain(old_database, "legacy", handler)
    # n=1's claim lapsed long ago: delivered again; n=2 and the pending
    # step-2 message as they were; what they sent on top.
    assert sorted(map(str, seen)) == sorted(
        map(str, [{"from": 0}, {"n": 1}, {"n": 2}, {"from": 1}, {"from": 2}])
    )

    def check(dispatch):
        run = dispatch.runs["old-chain"]
        assert run.status == model.SUCCEEDED
        assert len(run.messages) == 6
        assert len(run.legacy_messages) == 4  # old messages stay where they are
        assert sum(len(tree) for tree in run.message_shards.values()) == 2
        step = run.steps[2]
        # Oldest first: the old one, then n=2's (n=1 waited for its lapse).
        assert [m.payload for m in step.messages(run)] == [
            {"from": 0},
            {"from": 2},
            {"from": 1},
        ]
        lapsed = run.steps[1].messages(run)[1]
        assert [a.outcome for a in lapsed.attempts] == ["lapsed", "done"]
        queue = dispatch.queues["legacy"]
        assert queue.legacy_ready is None  # emptied, then dropped
        assert queue.pending_count() == 0
        assert queue.ready  # the claims of today's deliveries, in shards
        assert all(key.count(":") == 1 for key in queue.ready.keys())

    read(old_database, check)


def test_old_dead_letters_are_retried_and_new_runs_start(old_database):
    connection = old_database.open()
    try:
        with connection.transaction_manager:
            dispatch = broker.get_dispatch(connection.root())
            (revived,) = admin.retry_dead(dispatch, dispatch.runs["old-poison"])
            revived_id = revived.id
            new_run = broker.start_run(
                dispatch, {"1": {"queue": "legacy"}, "start": [[1, {"x": 1}]]}
            )
            new_run_id = new_run.id
    finally:
        connection.close()
    drain(old_database, "poison", lambda rw, payload: None)
    drain(old_database, "legacy", lambda rw, payload: None)

    def check(dispatch):
        assert dispatch.runs["old-poison"].status == model.SUCCEEDED
        assert dispatch.runs[new_run_id].status == model.SUCCEEDED
        assert dispatch.runs[new_run_id].legacy_messages is None
        assert len(dispatch.dead_letters) == 0
        (old,) = (
            dispatch.runs["old-poison"]
            .steps[1]
            .messages(dispatch.runs["old-poison"])[:1]
        )
        assert old.reinjected_as == revived_id

    read(old_database, check)
