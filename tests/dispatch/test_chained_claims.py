"""A serving consumer with a prefetch claims its next batch in the commit of
the last one's results; when it is stopped, the batch it holds already is
handled, not left claimed until its lease lapses."""

import threading

from dispatch import model
from dispatch.consumer import Consumer
from tests.dispatch.conftest import wait_until
from tests.dispatch.test_broker import read, start


def test_stopping_handles_the_batch_claimed_with_the_last_results(zeo_database):
    count = 200
    recipe = {"1": {"queue": "c", "output": 2}, "2": {"queue": "sink"}}
    recipe["start"] = [[1, n] for n in range(count)]
    run_id = start(zeo_database, recipe, now=None)
    handled = []
    stop = threading.Event()

    def handler(rw, payload):
        handled.append(payload)
        rw.send(payload)
        if len(handled) == 30:
            stop.set()  # mid-way: the next batch is claimed already

    consumer = Consumer(zeo_database, "c", handler, prefetch=10)
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
    assert sorted(handled) == list(range(len(handled)))  # each once, in order
    assert len(handled) == 40  # the batch that was carried was handled too

    def check(dispatch):
        run = dispatch.runs[run_id]
        states = [m.state for m in run.steps[1].messages(run)]
        assert states.count(model.IN_PROGRESS) == 0
        assert states.count(model.DONE) == 40
        assert states.count(model.PENDING) == count - 40
        assert len(run.steps[2].messages(run)) == 40
        assert dispatch.queues["c"].pending_count() == count - 40

    read(zeo_database, check)
