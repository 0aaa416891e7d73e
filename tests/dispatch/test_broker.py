"""Runs, messages, redelivery with back-off and dead letters, on a real zeo
server (in a thread) with a FileStorage in tmp_path."""

import logging

import pytest
import transaction

from dispatch.runtime.consumer import Consumer
from dispatch.state import broker, model

NOW = 1_800_000_000.0

CHAIN = {
    "description": "a fans out to b and c; c has no queue (dropped)",
    "1": {"queue": "a", "parameters": {"who": "{who}"}, "output": {"ok": [2, 3]}},
    "2": {"queue": "b"},
    "3": {"service": "nowhere"},
    "start": [[1, {"n": 1}], [1, {"n": 2}]],
}


def start(database, recipe, parameters=None, now=NOW):
    """Start a run in its own committed transaction; returns its id."""
    connection = database.open()
    try:
        with connection.transaction_manager:
            dispatch = broker.get_dispatch(connection.root())
            run = broker.start_run(dispatch, recipe, parameters, now=now)
        return run.id
    finally:
        connection.close()


def read(database, function):
    """*function*(dispatch) on a fresh connection, in a transaction begun
    on it: with ``server_sync`` the begin makes a round trip first, so that
    what other processes committed is seen (``open()`` alone does not)."""
    manager = transaction.TransactionManager()
    connection = database.open(manager)
    try:
        manager.begin()
        return function(broker.get_dispatch(connection.root()))
    finally:
        manager.abort()
        connection.close()


def test_a_run_through_two_queues(zeo_database):
    seen = []

    def first(rw, payload):
        seen.append(("a", payload, rw.recipe_step["parameters"]["who"]))
        rw.send_to("ok", {"from": payload["n"]})

    def second(rw, payload):
        seen.append(("b", payload, rw.recipe_path))

    run_id = start(zeo_database, CHAIN, {"who": "me"})
    consumer_a = Consumer(zeo_database, "a", first, name="A")
    consumer_b = Consumer(zeo_database, "b", second, name="B")
    try:
        assert read(zeo_database, lambda d: d.runs[run_id].status) == model.RUNNING
        assert consumer_a.process_one(NOW).state == model.DONE
        assert consumer_a.process_one(NOW).state == model.DONE
        assert consumer_a.process_one(NOW) is None
        assert consumer_b.process_one(NOW) is not None
        assert consumer_b.process_one(NOW) is not None
        assert consumer_b.process_one(NOW) is None
    finally:
        consumer_a.close()
        consumer_b.close()
    assert seen == [
        ("a", {"n": 1}, "me"),
        ("a", {"n": 2}, "me"),
        ("b", {"from": 1}, [1]),
        ("b", {"from": 2}, [1]),
    ]

    def check(dispatch):
        run = dispatch.runs[run_id]
        assert run.status == model.SUCCEEDED
        assert run.parameters["guid"] == run_id
        assert run.environment == {"ID": run_id}
        assert run.steps[1].status(run) == model.DONE
        assert run.steps[2].status(run) == model.DONE
        assert run.steps[3].status(run) == "waiting"
        assert len(run.messages) == 4
        attempt = run.steps[2].messages(run)[0].attempts[0]
        assert (attempt.outcome, attempt.consumer) == ("done", "B")
        assert run.finished is not None

    read(zeo_database, check)


def test_redelivery_with_back_off(zeo_database):
    recipe = {"1": {"queue": "flaky"}, "start": [[1, "x"]]}
    run_id = start(zeo_database, recipe)
    failures = [RuntimeError("first"), RuntimeError("second")]
    handled = []

    def handler(rw, payload):
        if failures:
            raise failures.pop(0)
        handled.append(payload)

    consumer = Consumer(zeo_database, "flaky", handler, backoff_base=10.0)
    try:
        message = consumer.process_one(NOW)
        assert (message.state, message.deliveries) == (model.PENDING, 1)
        assert message.reason == "RuntimeError: first"
        assert message.not_before == NOW + 10.0
        assert consumer.process_one(NOW + 9.9) is None  # backing off
        message = consumer.process_one(NOW + 10.0)
        assert (message.state, message.deliveries) == (model.PENDING, 2)
        assert message.not_before == NOW + 10.0 + 20.0  # doubled
        assert consumer.process_one(NOW + 29.9) is None
        assert consumer.process_one(NOW + 30.0).state == model.DONE
    finally:
        consumer.close()
    assert handled == ["x"]

    def check(dispatch):
        message = next(iter(dispatch.runs[run_id].messages.values()))
        outcomes = [(a.number, a.outcome, a.error) for a in message.attempts]
        assert outcomes == [
            (1, "error", "RuntimeError: first"),
            (2, "error", "RuntimeError: second"),
            (3, "done", None),
        ]
        assert dispatch.runs[run_id].status == model.SUCCEEDED

    read(zeo_database, check)


def test_poison_message_is_dead_lettered_after_five_deliveries(zeo_database):
    recipe = {"1": {"queue": "poison", "output": 2}, "2": {"queue": "next"}}
    recipe["start"] = [[1, "bad"]]
    run_id = start(zeo_database, recipe)
    calls = []

    def handler(rw, payload):
        calls.append(payload)
        rw.send("must not be sent")  # aborted with the failed delivery
        raise ValueError("cannot digest")

    consumer = Consumer(zeo_database, "poison", handler, backoff_base=1.0)
    now = NOW
    try:
        for delivery in range(1, 6):
            message = consumer.process_one(now)
            assert message.deliveries == delivery
            now += 100.0
        assert message.state == model.DEAD
        assert consumer.process_one(now) is None
    finally:
        consumer.close()
    assert len(calls) == 5

    def check(dispatch):
        run = dispatch.runs[run_id]
        assert run.status == model.FAILED
        assert dispatch.dead_count() == 1
        (dead,) = dispatch.dead_letters.values()
        assert dead.reason == (
            "dead-lettered after 5 deliveries; last: ValueError: cannot digest"
        )
        assert run.steps[2].status(run) == "waiting"
        assert "next" not in dispatch.queues

    read(zeo_database, check)


def test_a_delivery_given_back_is_due_at_once_and_not_counted(zeo_database):
    """A handler that stops through no fault of the message (GiveBack) does
    not bring it closer to the dead-letter queue, however often."""
    recipe = {"1": {"queue": "stoppy"}, "start": [[1, "work"]]}
    run_id = start(zeo_database, recipe)
    stops = []

    def handler(rw, payload):
        if len(stops) < 7:
            stops.append(payload)
            raise broker.GiveBack("service stopping")
        raise ValueError("a real failure")

    consumer = Consumer(zeo_database, "stoppy", handler, backoff_base=10.0)
    try:
        for delivery in range(1, 8):
            message = consumer.process_one(NOW)  # the same instant: due at once
            assert message is not None, f"given-back delivery {delivery} not due"
            assert message.state == model.PENDING
            assert (message.deliveries, message.given_back) == (delivery, delivery)
            assert message.not_before == NOW
            assert message.attempts[-1].outcome == "given back"
        failed = consumer.process_one(NOW)
        assert failed.counted_deliveries == 1
        assert failed.not_before == NOW + 10.0  # back-off for real failures
    finally:
        consumer.close()
    assert len(stops) == 7
    read(zeo_database, lambda dispatch: dispatch.runs[run_id].status == model.RUNNING)


def test_a_bad_recipe_or_parameter_starts_nothing(zeo_database):
    from dispatch.state.recipe import RecipeError

    with pytest.raises(RecipeError, match="unreferenced"):
        start(zeo_database, {"1": {}, "2": {}, "start": [[1, {}]]})
    with pytest.raises(RecipeError, match='node "1".*positional'):
        start(zeo_database, {"1": {"queue": "{}"}, "start": [[1, {}]]})
    assert read(zeo_database, lambda d: len(d.runs)) == 0


def test_a_conflict_at_completion_reapplies_the_sends_not_the_handler(
    zeo_database, caplog
):
    recipe = {"1": {"queue": "a", "output": 2}, "2": {"queue": "b"}}
    recipe["start"] = [[1, "x"]]
    run_id = start(zeo_database, recipe)
    calls = []

    def handler(rw, payload):
        calls.append(payload)
        rw.send("forward")
        # Another client changes the claimed message meanwhile, so this
        # consumer's first commit of the result conflicts.
        other = zeo_database.open(transaction_manager=_manager())
        try:
            dispatch = broker.get_dispatch(other.root())
            (message,) = dispatch.runs[run_id].messages.values()
            message.note = "touched"
            other.transaction_manager.commit()
        finally:
            other.close()

    consumer = Consumer(zeo_database, "a", handler)
    try:
        with caplog.at_level(logging.INFO, logger="dispatch.runtime.consumer"):
            assert consumer.process_one(NOW).state == model.DONE
    finally:
        consumer.close()
    assert calls == ["x"]
    assert "conflicted; applying again" in caplog.text

    def check(dispatch):
        run = dispatch.runs[run_id]
        first = run.steps[1].messages(run)[0]
        assert first.note == "touched" and first.deliveries == 1
        (forwarded,) = run.steps[2].messages(run)
        assert forwarded.payload == "forward" and forwarded.path == [1]

    read(zeo_database, check)


def _manager():
    import transaction

    return transaction.TransactionManager()
