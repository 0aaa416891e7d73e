"""The pure operations the web console added to the state layer: pages
of runs newest first (filtered by state and service), keys read a slice
at a time, the figures of /metrics, and the dead-letter operations on one
letter still in the index."""

import json

import pytest
from BTrees.OOBTree import OOBTree

from dispatch.state import broker, deadletters, model, views

GREET = {"1": {"service": "greeter", "queue": "greet"}, "start": [[1, {}]]}
COUNT = {
    "description": "Count the words",
    "1": {"service": "counter", "queue": "count"},
    "start": [[1, {}]],
}


def start(dispatch, recipe, guid, now):
    name = "count" if recipe is COUNT else "greet"
    return broker.start_run(dispatch, recipe, {"guid": guid}, now=now, name=name)


@pytest.fixture
def dispatch():
    """Dispatch state outside any database: 12 runs, the odd ones of the
    counter, run-03 failed (a dead letter), run-04 succeeded."""
    state = model.Dispatch()
    for number in range(12):
        start(state, COUNT if number % 2 else GREET, f"run-{number:02d}", 1000 + number)
    failed = broker.claim(state, "count", "test", now=2000)
    assert failed.run_id == "run-01"
    broker.dead_letter(state, failed, "it broke", now=2001)
    return state


def ids(page):
    return [row["run"] for row in page.rows]


def test_keys_come_greatest_first_a_slice_at_a_time(monkeypatch):
    tree = OOBTree({f"{number:04d}": number for number in range(1000)})
    monkeypatch.setattr(views, "SCAN_CHUNK", 7)
    assert list(views.keys_newest_first(tree)) == sorted(tree.keys(), reverse=True)
    assert list(views.keys_newest_first(OOBTree())) == []


def test_pages_of_all_runs_are_slices_newest_first(dispatch):
    first = views.list_runs(dispatch, page=1, size=5)
    assert ids(first) == [f"run-{n:02d}" for n in (11, 10, 9, 8, 7)]
    assert first.has_next
    last = views.list_runs(dispatch, page=3, size=5)
    assert ids(last) == ["run-01", "run-00"] and not last.has_next
    assert views.list_runs(dispatch, page=4, size=5).rows == []
    exactly = views.list_runs(dispatch, page=2, size=6)
    assert ids(exactly)[-1] == "run-00" and not exactly.has_next


def test_filters_by_state_and_service_across_slices(dispatch, monkeypatch):
    monkeypatch.setattr(views, "SCAN_CHUNK", 3)
    counted = views.list_runs(dispatch, service="counter", page=1, size=4)
    assert ids(counted) == ["run-11", "run-09", "run-07", "run-05"]
    assert counted.has_next
    rest = views.list_runs(dispatch, service="count", page=2, size=4)
    assert ids(rest) == ["run-03", "run-01"] and not rest.has_next
    named = views.list_runs(dispatch, recipe="count", size=50)
    assert ids(named) == [f"run-{n:02d}" for n in (11, 9, 7, 5, 3, 1)]
    assert named.total == 6
    assert views.list_runs(dispatch, recipe="Count the words").rows == []
    failed = views.list_runs(dispatch, status=model.FAILED)
    assert ids(failed) == ["run-01"]
    assert failed.rows[0]["status"] == model.FAILED
    assert views.list_runs(dispatch, status=model.FAILED, service="greet").rows == []


def test_a_summary_counts_done_steps(dispatch):
    message = broker.claim(dispatch, "greet", "test", now=3000)
    broker.finish(dispatch, message, now=3001, exit_code=0)
    row = views.run_summary(dispatch.runs[message.run_id])
    assert row["status"] == model.SUCCEEDED
    assert (row["steps"], row["steps_done"]) == (1, 1)
    assert row["services"] == ["greet", "greeter"]


def test_bad_pages_and_states_are_refused(dispatch):
    for arguments in ({"page": 0}, {"size": 0}, {"status": "sleeping"}):
        with pytest.raises(ValueError):
            views.list_runs(dispatch, **arguments)


def test_figures_count_queues_runs_dead_letters_and_instances(dispatch):
    from dispatch.state import admin

    admin.register_instance(dispatch, "Greeter", "greet", now=1, pid=11)
    stopped = admin.register_instance(dispatch, "Greeter", "greet", now=1, pid=12)
    stopped.stopped = 2
    figures = views.figures(dispatch)
    assert figures["pending"] == {"greet": 6, "count": 5}
    assert figures["dead_letters"] == {"count": 1}
    assert figures["runs"] == {
        model.RUNNING: 11,
        model.SUCCEEDED: 0,
        model.FAILED: 1,
        model.CANCELLED: 0,
    }
    assert figures["instances"] == {"Greeter": 1}
    assert [
        i["pid"]
        for i in map(views.instance_document, views.running_instances(dispatch))
    ] == [11]


def test_a_dead_letter_in_the_index_is_reinjected_as_a_new_message(dispatch):
    (letter_id,) = dispatch.dead_letters.keys()
    new_id = deadletters.reinject_dead_letter(dispatch, letter_id, now=4000)
    run = dispatch.runs["run-01"]
    assert letter_id not in dispatch.dead_letters and dispatch.dead_count() == 0
    assert run.messages[new_id].state == model.PENDING
    assert run.messages[letter_id].reinjected_as == new_id
    assert run.status == model.RUNNING
    with pytest.raises(deadletters.DeadLetterError, match="no dead letter"):
        deadletters.reinject_dead_letter(dispatch, letter_id)


def test_purge_may_take_one_dead_letter(dispatch, tmp_path):
    other = broker.claim(dispatch, "count", "test", now=5000)
    broker.dead_letter(dispatch, other, "again", now=5001)
    (path,) = deadletters.purge(dispatch, tmp_path, message_ids={other.id})
    assert json.loads(path.read_text())["header"]["message-id"] == other.id
    assert (
        list(dispatch.dead_letters.keys()) != []
        and other.id not in dispatch.dead_letters
    )
    assert dispatch.dead_count() == 1


def test_the_console_binds_loopback_unless_told_otherwise():
    from dispatch.web.settings import WebSettings

    assert WebSettings.from_section(None).bind_address() == ("127.0.0.1", 8080)
    assert WebSettings(bind="9000").bind_address() == ("127.0.0.1", 9000)
    assert WebSettings(bind=":9000").bind_address() == ("127.0.0.1", 9000)
    assert WebSettings(bind="var/web.sock").bind_address() == "var/web.sock"


def test_the_console_sits_above_the_state_and_beside_the_commands():
    from tests.dispatch.test_layers import graph

    wrong = [
        (name, target)
        for name, targets in graph().items()
        for target in targets
        if (
            name.startswith("dispatch.web")
            and target.startswith(("dispatch.cli", "dispatch.runtime"))
        )
        or (
            name.startswith(("dispatch.state", "dispatch.runtime"))
            and target.startswith("dispatch.web")
        )
    ]
    assert wrong == []
    assert "dispatch.web.app" in graph()["dispatch.cli.web"]


def test_an_attempts_tail_is_its_programs_while_it_runs(dispatch):
    assert views.output_tail({"output_tail": "done\n", "program": None}) == "done\n"
    running = {"output_tail": None, "program": {"output_tail": "so far"}}
    assert views.output_tail(running) == "so far"
    assert views.output_tail({"output_tail": None, "program": None}) is None


def test_a_storage_without_watch_gives_quiet_streams():
    import asyncio

    from dispatch.web.events import Hub

    async def check():
        hub = Hub()
        hub.start(object())
        stream = hub.open()
        hub.stop()
        return await stream.get()

    assert asyncio.run(check()) is None


def test_running_instances_come_from_an_index_of_the_running_ones():
    from dispatch.state import admin

    state = model.Dispatch()
    gone = [admin.register_instance(state, "Old", "q", now=n, pid=n) for n in (1, 2)]
    for instance in gone:
        admin.mark_stopped(state, instance, now=3)
    running = admin.register_instance(state, "Greeter", "greet", now=4, pid=40)
    assert list(state.running_instances) == [running.id]  # the stopped left it
    assert views.running_instances(state) == [running]
    assert [i.id for i in admin.request_shutdown(state)] == [running.id]
    # A database made before the index: a scan, until a write builds it.
    del state.running_instances
    assert views.running_instances(state) == [running]
    admin.register_instance(state, "Greeter", "greet", now=5, pid=50)
    assert len(state.running_instances) == 2


def test_a_supervisors_record_replaces_a_killed_ones_and_takes_start_requests():
    from dispatch.state import supervisors

    state = model.Dispatch()
    services = {"runner": {"service": "CommandRunner", "queue": "q", "instances": 1}}
    killed = supervisors.register(state, "site", services, now=1)
    other = supervisors.register(state, "elsewhere", services, now=1)
    record = supervisors.register(state, "site", services, now=2)
    assert killed.stopped == 2 and other.stopped is None
    assert supervisors.running(state) == [other, record]
    with pytest.raises(supervisors.SupervisorError, match="every instance"):
        supervisors.request_start(state, record.id, "runner", "me")
    supervisors.note_stopped(record, "runner", 1)
    with pytest.raises(supervisors.NoSuchService, match="keeps: runner"):
        supervisors.request_start(state, record.id, "nosuch", "me")
    with pytest.raises(supervisors.NoSuchService, match="no running supervisor"):
        supervisors.request_start(state, killed.id, "runner", "me")
    supervisors.request_start(state, record.id, "runner", "me", now=3)
    assert supervisors.document(record)["services"][0]["requested"]
    assert supervisors.take_requests(record) == ["runner"]
    assert supervisors.take_requests(record) == []
