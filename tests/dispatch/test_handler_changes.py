"""What a handler changes in zeo is committed with its message's transition,
exactly once, even when that commit conflicts.

Found by the dispatch crash soak (``bench/soak/dispatch_crash.py``): the
retry after a conflict applied the completion again but not the handler,
so the handler's own changes, aborted with the first try, were lost while
the message was marked done.  A handler that changes nothing in zeo (it
only sends) still runs once.  A ``CommandRunner`` whose handler runs again
does not start its program again: the end this delivery committed stands.
"""

import pytest
from persistent.mapping import PersistentMapping

from dispatch.runtime.commandrunner import CommandRunner
from dispatch.runtime.consumer import Consumer
from dispatch.runtime.service import make_consumer
from dispatch.state import model
from tests.dispatch.test_broker import read, start
from tests.dispatch.test_commandrunner import papa_kernel  # noqa: F401

RECIPE = {"1": {"queue": "c", "output": 2}, "2": {"queue": "sink"}}


def make_counter(database):
    with database.transaction() as connection:
        connection.root()["counter"] = PersistentMapping(handled=0, other=0)


def change_elsewhere(database, change):
    """Commit ``change(root)`` through another connection: a transaction
    begun before it that writes the same object conflicts."""
    with database.transaction() as connection:
        change(connection.root())


def bump_other(root):
    root["counter"]["other"] += 1


def counting(consumer_of, database, calls):
    """A handler that adds one to ``counter["handled"]`` through its
    consumer's connection; on its first call another connection changes the
    counter first, so the consumer's commit conflicts."""

    def handler(recipe_wrapper, payload):
        calls.append(payload)
        if len(calls) == 1:
            change_elsewhere(database, bump_other)
        consumer_of().connection.root()["counter"]["handled"] += 1
        recipe_wrapper.send(payload)

    return handler


def outcome(database, run_id):
    def look(dispatch):
        run = dispatch.runs[run_id]
        (message,) = run.steps[1].messages(run)
        counter = dict(dispatch._p_jar.root()["counter"])
        return message.state, len(run.steps[2].messages(run)), counter

    return read(database, look)


@pytest.mark.parametrize("chain_claims", [True, False], ids=["batch", "one"])
def test_a_handlers_change_is_committed_once_across_a_conflict(
    zeo_database, chain_claims
):
    make_counter(zeo_database)
    run_id = start(zeo_database, dict(RECIPE, start=[[1, "a"]]), now=None)
    calls = []
    consumer = Consumer(
        zeo_database,
        "c",
        counting(lambda: consumer, zeo_database, calls),
        chain_claims=chain_claims,
    )
    try:
        handled = consumer.process_batch(1) if chain_claims else consumer.process_one()
        assert handled
    finally:
        consumer.close()
    assert consumer.conflicts["complete"] == 1
    # Run again with the completion: its change is in, once.
    assert calls == ["a", "a"]
    state, sent, counter = outcome(zeo_database, run_id)
    assert (state, sent) == (model.DONE, 1)
    assert counter == {"handled": 1, "other": 1}


def test_a_handler_that_only_sends_runs_once_across_a_conflict(zeo_database):
    make_counter(zeo_database)
    run_id = start(zeo_database, dict(RECIPE, start=[[1, "a"]]), now=None)
    calls = []

    def handler(recipe_wrapper, payload):
        calls.append(payload)

        def touch_message(root):
            run = root["dispatch"].runs[run_id]
            run.messages[recipe_wrapper.message_id].reason = "touched"

        change_elsewhere(zeo_database, touch_message)
        recipe_wrapper.send(payload)

    consumer = Consumer(zeo_database, "c", handler)
    try:
        assert consumer.process_batch(1)
    finally:
        consumer.close()
    assert consumer.conflicts["complete"] == 1
    assert calls == ["a"]
    state, sent, counter = outcome(zeo_database, run_id)
    assert (state, sent) == (model.DONE, 1)
    assert counter == {"handled": 0, "other": 0}


class CountingRunner(CommandRunner):
    """Counts its message in zeo after the program ended; the first time,
    another connection changes the counter first (a conflict)."""

    calls = 0

    def handle(self, recipe_wrapper, payload):
        super().handle(recipe_wrapper, payload)
        type(self).calls += 1
        if self.calls == 1:
            change_elsewhere(self.consumer.database, bump_other)
        self.consumer.connection.root()["counter"]["handled"] += 1


def test_a_runner_run_again_after_a_conflict_does_not_start_its_program_again(
    zeo_database,
    papa_kernel,  # noqa: F811
    tmp_path,
):
    make_counter(zeo_database)
    starts = tmp_path / "starts"
    recipe = {
        "1": {"command": ["/bin/sh", "-c", f"echo started >> {starts}"], "output": 2},
        "2": {"queue": "sink"},
        "start": [[1, {}]],
    }
    run_id = start(zeo_database, recipe, now=None)
    consumer = make_consumer(CountingRunner(), zeo_database, name="runner")
    try:
        assert consumer.process_one() is not None
    finally:
        consumer.close()
    assert CountingRunner.calls == 2
    assert consumer.conflicts["complete"] == 1
    assert starts.read_text() == "started\n"
    state, sent, counter = outcome(zeo_database, run_id)
    assert (state, sent) == (model.DONE, 1)
    assert counter == {"handled": 1, "other": 1}
