"""dispatch's own Dispatcher in process on a real zeo server (in a thread):
filters named in ``$DISPATCH_FILTERS``, custom recipes, the run started in
the commit that finishes the request.  With real processes and zocalo's
clients: test_fanout_services.py."""

import pytest

from dispatch.runtime.dispatcher import Dispatcher, load_filters
from dispatch.runtime.service import make_consumer
from dispatch.state import model
from tests.dispatch.test_broker import read, start

CUSTOM = {"1": {"queue": "work", "parameters": {"x": "{x}"}}, "start": [[1, {}]]}


def shout(message, parameters):
    parameters["x"] = str(parameters.get("x", "")).upper()
    return message, parameters


def request(zeo_database, body):
    chain = {"1": {"queue": "processing_recipe"}, "start": [[1, body]]}
    return start(zeo_database, chain, now=None)


@pytest.fixture
def dispatcher(zeo_database, monkeypatch):
    monkeypatch.setenv("DISPATCH_FILTERS", f"{__name__}:shout")
    monkeypatch.delenv("DISPATCH_RECIPES", raising=False)
    service = Dispatcher()
    service.initializing()
    consumer = make_consumer(service, zeo_database)
    yield consumer
    consumer.close()


def test_a_custom_recipe_starts_through_the_filters(zeo_database, dispatcher):
    request(zeo_database, {"custom_recipe": CUSTOM, "parameters": {"x": "hi"}})
    assert dispatcher.process_one() is not None

    def started(dispatch):
        [run] = [r for r in dispatch.runs.values() if r.name == "custom"]
        [message] = run.messages.values()
        return run.id, run.parameters, message.queue, run.recipe["1"]["parameters"]

    run_id, parameters, queue, step_parameters = read(zeo_database, started)
    assert parameters == {"x": "HI", "guid": run_id}
    assert (queue, step_parameters) == ("work", {"x": "HI"})


def test_bad_requests_are_dead_letters_at_once(zeo_database, dispatcher):
    first = {"custom_recipe": CUSTOM, "parameters": {"guid": "twice"}}
    request(zeo_database, first)
    assert dispatcher.process_one() is not None
    for body in (first, {"recipes": ["named"]}, ["not", "an", "object"], {}):
        request(zeo_database, body)
        assert dispatcher.process_one() is not None

    def reasons(dispatch):
        return [(m.deliveries, m.reason) for m in dispatch.dead_letters.values()]

    found = read(zeo_database, reasons)
    assert [deliveries for deliveries, _r in found] == [1, 1, 1, 1]
    texts = " | ".join(reason for _d, reason in found)
    for expected in (
        "Reject: run twice exists already",
        "Reject: recipe 'named': $DISPATCH_RECIPES is not set",
        "Reject: a request is an object, not ['not', 'an', 'object']",
        "Reject: no recipe: give recipes or custom_recipe",
    ):
        assert expected in texts
    assert read(zeo_database, lambda d: d.runs["twice"].status) == model.RUNNING


def test_a_filter_that_does_not_load_is_named():
    with pytest.raises(ValueError, match=r"cannot load filter 'nowhere:nothing'"):
        load_filters("nowhere:nothing")
    assert [name for name, _f in load_filters(f"{__name__}:shout")][-1] == (
        f"{__name__}:shout"
    )
