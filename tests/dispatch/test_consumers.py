"""Consumers sharing a queue: no message handled twice, a consumer killed
mid-message (its message delivered again once its claim lapses), and waking by zeo watch."""

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import zeo
from dispatch.runtime.consumer import Consumer
from dispatch.state import broker, model
from tests.conftest import PYTHON
from tests.dispatch.test_broker import read, start

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WAIT = 60  # generous bound for a loaded 2-core machine; never a sync sleep


def fan_in(count, queue="work"):
    return {"1": {"queue": queue}, "start": [[1, n] for n in range(count)]}


def test_two_threads_share_a_queue_and_never_handle_a_message_twice(zeo_database):
    count = 40
    run_id = start(zeo_database, fan_in(count), now=None)
    handled = []
    lock = threading.Lock()
    # Both consumers must be inside a handler at once (proof that they run
    # concurrently), each with a different claimed message.
    both_busy = threading.Barrier(2, timeout=WAIT)
    first_call = threading.local()

    def handler(rw, payload):
        if not getattr(first_call, "done", False):
            first_call.done = True
            both_busy.wait()
        with lock:
            handled.append(payload)

    errors = []

    def work(name):
        consumer = Consumer(zeo_database, "work", handler, name=name)
        try:
            while consumer.process_one() is not None:
                pass
        except Exception as error:  # reported by the main thread
            errors.append(error)
        finally:
            consumer.close()

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not errors
    assert sorted(handled) == list(range(count))

    def check(dispatch):
        run = dispatch.runs[run_id]
        assert run.status == model.SUCCEEDED
        consumers = {m.attempts[0].consumer for m in run.messages.values()}
        assert consumers == {"t1", "t2"}
        assert all(m.deliveries == 1 for m in run.messages.values())
        assert dispatch.queues["work"].pending_count() == 0

    read(zeo_database, check)


def consumer_process(address, queue, mode, lease=300):
    environment = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}:{ROOT}")
    arguments = [address, queue, mode, str(lease)]
    return subprocess.Popen(
        [PYTHON, str(HERE / "consumer_process.py"), *arguments],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=environment,
    )


def test_two_processes_on_a_runzeo_server_share_a_queue(runzeo):
    # server_sync: the run's end was committed by the other processes; a
    # transaction of ours sees it only after a round trip (see read()).
    database = zeo.DB(runzeo.address, server_sync=True)
    try:
        count = 30
        run_id = start(database, fan_in(count), now=None)
        processes = [consumer_process(runzeo.address_text, "work", "drain")]
        processes.append(consumer_process(runzeo.address_text, "work", "drain"))
        outputs = [process.communicate(timeout=WAIT)[0] for process in processes]
        assert [process.returncode for process in processes] == [0, 0]
        handled = [json.loads(line) for out in outputs for line in out.split()]
        assert sorted(handled) == list(range(count))
        assert read(database, lambda d: d.runs[run_id].status) == model.SUCCEEDED
    finally:
        database.close()


def test_a_consumer_killed_mid_message_is_redelivered_exactly_once(runzeo):
    # server_sync: each transaction first makes a round trip, so the claim
    # the other process committed is seen (its invalidation has arrived).
    database = zeo.DB(runzeo.address, server_sync=True)
    try:
        run_id = start(database, fan_in(1, queue="fragile"), now=None)
        holder = consumer_process(runzeo.address_text, "fragile", "hold", lease=600)
        line = holder.stdout.readline()
        assert line.split() == ["claimed", "0"], line
        assert read(database, lambda d: d.queues["fragile"].pending_count()) == 0
        holder.send_signal(signal.SIGKILL)
        holder.wait(WAIT)
        holder.stdin.close()
        holder.stdout.close()

        handled = []
        consumer = Consumer(
            database, "fragile", lambda rw, p: handled.append(p), backoff_base=0
        )
        try:
            # Still claimed: nothing to take until the claim lapses.  The
            # consumer is told the time instead of the test waiting 600 s.
            assert consumer.process_one() is None
            later = time.time() + 601
            message = consumer.process_one(later)
            assert message is not None and message.state == model.DONE
            assert consumer.process_one(later) is None
        finally:
            consumer.close()
        assert handled == [0]

        def check(dispatch):
            (message,) = dispatch.runs[run_id].messages.values()
            assert message.deliveries == 2
            first, second = message.attempts
            assert first.outcome == "lapsed" and first.pid == holder.pid
            assert "did not finish it in time" in first.error
            assert second.outcome == "done"

        read(database, check)
    finally:
        database.close()


def test_serve_is_woken_by_a_commit(zeo_database):
    arrived = threading.Event()
    payloads = []

    def handler(rw, payload):
        payloads.append(payload)
        arrived.set()

    consumer = Consumer(zeo_database, "later", handler, name="server")
    stop = threading.Event()
    thread = threading.Thread(target=consumer.serve, args=(stop,))
    thread.start()
    try:
        # The consumer waits with no timeout (nothing scheduled) until the
        # watch callback reports the commit that starts this run.
        start(zeo_database, fan_in(1, queue="later"), now=None)
        assert arrived.wait(WAIT)
    finally:
        stop.set()
        consumer.wake()
        thread.join(WAIT)
        consumer.close()
    assert payloads == [0]
    assert broker.destination_queue({"command": ["x"]}) == broker.COMMAND_QUEUE
