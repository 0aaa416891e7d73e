"""Services: finding them by name, and the example services on a real zeo
server (checkpoints included)."""

import pytest

from dispatch.errors import CommandError
from dispatch.runtime.consumer import Consumer
from dispatch.runtime.examples import Counter, Greeter
from dispatch.runtime.service import load_service, make_consumer
from dispatch.state import model
from tests.dispatch.test_broker import read, start


def test_load_service_by_module_and_class():
    assert load_service("dispatch.examples:Greeter") is Greeter
    with pytest.raises(CommandError, match="cannot load service"):
        load_service("dispatch.examples:Nobody")


def test_an_unknown_service_name_lists_what_is_known():
    with pytest.raises(CommandError) as raised:
        load_service("NoSuchServiceAnywhere")
    assert "is not known (known services:" in str(raised.value)
    assert "module:Class" in str(raised.value)


RECIPE = {
    "1": {"queue": "greet", "parameters": {"name": "{name}"}, "output": {"greeted": 2}},
    "2": {"queue": "count", "parameters": {"limit": "{$REPLACE:limit}"}},
    "start": [[1, {"greeting": "hi"}]],
}


def test_greeter_then_counter_with_checkpoints(zeo_database):
    run_id = start(zeo_database, RECIPE, {"name": "Ada", "limit": 3}, now=None)
    greeter = make_consumer(Greeter(), zeo_database, name="greeter")
    counter = make_consumer(Counter(), zeo_database, name="counter")
    try:
        assert greeter.process_one() is not None
        handled = []
        while (message := counter.process_one()) is not None:
            handled.append(message.payload)
    finally:
        greeter.close()
        counter.close()
    assert handled == [
        {"greeting": "hi Ada"},
        {"greeting": "hi Ada", "count": 1},
        {"greeting": "hi Ada", "count": 2},
    ]

    def check(dispatch):
        run = dispatch.runs[run_id]
        assert run.status == model.SUCCEEDED
        paths = [message.path for message in run.steps[2].messages(run)]
        assert paths == [[1], [1], [1]]  # checkpoints keep the path

    read(zeo_database, check)


def test_make_consumer_needs_a_queue(zeo_database):
    class Nameless(Greeter):
        queue = None

    with pytest.raises(CommandError, match="names no queue"):
        make_consumer(Nameless(), zeo_database)
    consumer = make_consumer(Greeter(), zeo_database, "other")
    try:
        assert isinstance(consumer, Consumer) and consumer.queue == "other"
    finally:
        consumer.close()
