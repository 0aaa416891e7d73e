"""Consumers with a prefetch: a batch claimed and committed together, a
failing message in it retried alone, and two batching threads sharing a
queue without handling any message twice."""

import threading

from dispatch.runtime.consumer import Consumer
from dispatch.state import model
from tests.dispatch.test_broker import NOW, read, start


def test_a_batch_with_one_failure(zeo_database):
    recipe = {"1": {"queue": "q", "output": 2}, "2": {"queue": "next"}}
    recipe["start"] = [[1, n] for n in range(6)]
    run_id = start(zeo_database, recipe)
    calls = []

    def handler(rw, payload):
        calls.append(payload)
        rw.send(payload * 10)
        if payload == 3 and calls.count(3) == 1:
            raise ValueError("three")

    consumer = Consumer(zeo_database, "q", handler, backoff_base=5.0)
    try:
        batch = consumer.process_batch(4, NOW)
        assert [m.payload for m in batch] == [0, 1, 2, 3]
        assert [m.state for m in batch] == [model.DONE] * 3 + [model.PENDING]
        assert [m.payload for m in consumer.process_batch(4, NOW)] == [4, 5]
        assert consumer.process_batch(4, NOW) == []
        assert [m.payload for m in consumer.process_batch(4, NOW + 5)] == [3]
    finally:
        consumer.close()
    assert calls == [0, 1, 2, 3, 4, 5, 3]

    def check(dispatch):
        run = dispatch.runs[run_id]
        forwarded = sorted(m.payload for m in run.steps[2].messages(run))
        # The failed delivery's send was rolled back with it.
        assert forwarded == [0, 10, 20, 30, 40, 50]
        (retried,) = [m for m in run.messages.values() if m.deliveries == 2]
        assert retried.attempts[0].error == "ValueError: three"

    read(zeo_database, check)


def test_two_batching_threads_never_handle_a_message_twice(zeo_database):
    count = 60
    run_id = start(
        zeo_database,
        {"1": {"queue": "w"}, "start": [[1, n] for n in range(count)]},
        now=None,
    )
    handled = []
    lock = threading.Lock()

    def handler(rw, payload):
        with lock:
            handled.append(payload)

    def work(name):
        consumer = Consumer(zeo_database, "w", handler, name=name, prefetch=7)
        try:
            while consumer.process_batch(7):
                pass
        finally:
            consumer.close()

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(handled) == list(range(count))
    assert read(zeo_database, lambda d: d.runs[run_id].status) == model.SUCCEEDED
