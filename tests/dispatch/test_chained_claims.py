"""A serving consumer claims its next message (or batch, with a prefetch)
in the commit of the last one's results.  Stopping it claims no more: it
stops after the messages it holds, and a batch it claimed already is
handled, not left claimed until its lease lapses."""

import threading

import pytest

from dispatch.runtime.consumer import Consumer
from dispatch.state import model
from tests.dispatch.conftest import wait_until
from tests.dispatch.test_broker import read, start

COUNT = 200


def start_chain(zeo_database):
    recipe = {"1": {"queue": "c", "output": 2}, "2": {"queue": "sink"}}
    recipe["start"] = [[1, n] for n in range(COUNT)]
    return start(zeo_database, recipe, now=None)


def check_states(zeo_database, run_id, done):
    def check(dispatch):
        run = dispatch.runs[run_id]
        states = [m.state for m in run.steps[1].messages(run)]
        assert states.count(model.IN_PROGRESS) == 0
        assert states.count(model.DONE) == done
        assert states.count(model.PENDING) == COUNT - done
        assert len(run.steps[2].messages(run)) == done
        assert dispatch.queues["c"].pending_count() == COUNT - done

    read(zeo_database, check)


def stopping_after(count, handled, stop):
    """A handler that records and sends on each payload, and sets *stop*
    once *count* were handled."""

    def handler(rw, payload):
        handled.append(payload)
        rw.send(payload)
        if len(handled) == count:
            stop.set()

    return handler


@pytest.mark.parametrize("prefetch", [1, 10])
def test_stopping_claims_no_more_after_the_messages_held(zeo_database, prefetch):
    run_id = start_chain(zeo_database)
    handled = []
    stop = threading.Event()
    # Stopped while holding messages 21-30 (or 30 alone).
    handler = stopping_after(30, handled, stop)
    consumer = Consumer(zeo_database, "c", handler, prefetch=prefetch)
    assert consumer.chain_claims
    thread = threading.Thread(target=consumer.serve, args=(stop,))
    thread.start()
    try:
        wait_until(stop.is_set, message="30 messages handled")
        consumer.wake()
        thread.join(60)
        assert not thread.is_alive()
    finally:
        stop.set()
        consumer.wake()
        thread.join(60)
        consumer.close()
    assert handled == list(range(30))  # each once, in order, and no more
    check_states(zeo_database, run_id, done=30)


@pytest.mark.parametrize("prefetch", [1, 10])
def test_a_batch_claimed_with_the_last_results_is_handled_when_stopping(
    zeo_database, prefetch
):
    run_id = start_chain(zeo_database)
    handled = []

    def handler(rw, payload):
        handled.append(payload)
        rw.send(payload)

    consumer = Consumer(zeo_database, "c", handler, prefetch=prefetch)
    try:
        # Handles one batch and claims the next with its results.
        consumer.process_batch(prefetch, claim_next=True)
        assert handled == list(range(prefetch))

        def holds_the_next_batch(dispatch):
            run = dispatch.runs[run_id]
            states = [m.state for m in run.steps[1].messages(run)]
            assert states.count(model.IN_PROGRESS) == prefetch

        read(zeo_database, holds_the_next_batch)
        stop = threading.Event()
        stop.set()  # stopped before serving: only what it holds is handled
        consumer.serve(stop)
    finally:
        consumer.close()
    assert handled == list(range(2 * prefetch))
    check_states(zeo_database, run_id, done=2 * prefetch)


def test_a_consumer_whose_handler_commits_claims_one_at_a_time(zeo_database):
    """``chain_claims=False`` (a handler that commits on its own, such as
    CommandRunner): the claim is a commit of its own, after the results."""
    run_id = start_chain(zeo_database)
    handled = []
    stop = threading.Event()
    handler = stopping_after(5, handled, stop)
    consumer = Consumer(zeo_database, "c", handler, chain_claims=False)
    try:
        consumer.serve(stop)
    finally:
        consumer.close()
    assert handled == list(range(5))
    check_states(zeo_database, run_id, done=5)
