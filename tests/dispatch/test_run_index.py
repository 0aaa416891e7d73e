"""The run index (dispatch.state.runindex): every transition files the run
under its new state in the same transaction, the filters read it (state,
recipe name, age, pages newest first) and agree with a scan of every run,
the last two messages of a run finished at once by two connections to a
real runzeo still move it to succeeded, and a database written before the
index (``data/unindexed.fs``, see ``data/make_unindexed_database.py``) is
indexed once when opened."""

import logging
import shutil
from pathlib import Path

import pytest
import transaction
from BTrees.Length import Length
from ZODB.POSException import ConflictError

import zeo
from dispatch.state import admin, broker, model, runindex, views
from dispatch.state.database import dispatch_state, ensure_run_index
from tests.dispatch.conftest import RunzeoProcess
from tests.dispatch.test_broker import read

DATA = Path(__file__).resolve().parent / "data" / "unindexed.fs"
ONE = {"1": {"service": "worker", "queue": "work"}, "start": [[1, {}]]}
TWO = {"1": {"queue": "work"}, "start": [[1, {"n": 0}], [1, {"n": 1}]]}


def scanned_states(dispatch):
    counts = dict.fromkeys(model.RUN_STATES, 0)
    for run in dispatch.runs.values():
        counts[run.status] += 1
    return counts


def ids(page):
    return [row["run"] for row in page.rows]


def test_every_transition_files_the_run_under_its_state():
    dispatch = model.Dispatch()
    index = dispatch.run_index
    run = broker.start_run(dispatch, ONE, {"guid": "r1"}, now=10, name="one")
    assert index.state_of["r1"] == model.RUNNING
    message = broker.claim(dispatch, "work", "test", now=11)
    broker.dead_letter(dispatch, message, "broke", now=12)
    assert index.state_of["r1"] == model.FAILED
    assert views.figures(dispatch)["dead_letters"] == {"work": 1}
    (again,) = admin.retry_dead(dispatch, run, now=13)
    assert index.state_of["r1"] == model.RUNNING
    assert views.figures(dispatch)["dead_letters"] == {}
    claimed = broker.claim(dispatch, "work", "test", now=14)
    assert claimed is again
    broker.finish(dispatch, claimed, now=15)
    assert index.state_of["r1"] == model.SUCCEEDED
    other = broker.start_run(dispatch, ONE, {"guid": "r2"}, now=16, name="one")
    admin.cancel_run(dispatch, other, now=17)
    assert index.state_of["r2"] == model.CANCELLED
    figures = views.figures(dispatch)
    assert figures["runs"] == scanned_states(dispatch)
    assert figures["runs"][model.SUCCEEDED] == 1
    assert figures["transitions"] == {
        ("new", "running"): 2,
        ("running", "failed"): 1,
        ("failed", "running"): 1,
        ("running", "succeeded"): 1,
        ("running", "cancelled"): 1,
    }
    # Each run is in exactly one state's key set.
    keys = {state: list(index.states[state].keys) for state in model.RUN_STATES}
    assert sum(len(found) for found in keys.values()) == 2


def test_a_run_with_messages_left_stays_running_until_the_last():
    dispatch = model.Dispatch()
    broker.start_run(dispatch, TWO, {"guid": "pair"}, now=1)
    first = broker.claim(dispatch, "work", "a", now=2)
    second = broker.claim(dispatch, "work", "b", now=2)
    broker.finish(dispatch, first, now=3)
    assert dispatch.run_index.state_of["pair"] == model.RUNNING
    broker.finish(dispatch, second, now=4)
    assert dispatch.run_index.state_of["pair"] == model.SUCCEEDED


@pytest.fixture
def many():
    """40 runs started at 1000..1039, alternately of recipes "even" and
    "odd"; every third one failed."""
    dispatch = model.Dispatch()
    for number in range(40):
        name = "odd" if number % 2 else "even"
        broker.start_run(
            dispatch, ONE, {"guid": f"run-{number:02d}"}, now=1000 + number, name=name
        )
    for message in list(dispatch.queues["work"].ready.values()):
        if int(message.run_id[-2:]) % 3 == 0:
            broker.claim(dispatch, "work", "test", now=5000)
    for message in list(dispatch.queues["work"].ready.values()):
        if message.state == model.IN_PROGRESS:
            broker.dead_letter(dispatch, message, "every third", now=5001)
    return dispatch


def expected(dispatch, keep):
    """Run ids newest first that *keep*(run) accepts, by a scan."""
    runs = sorted(dispatch.runs.values(), key=lambda run: run.created, reverse=True)
    return [run.id for run in runs if keep(run)]


def all_pages(dispatch, size, **filters):
    found, page = [], 1
    while True:
        listed = views.list_runs(dispatch, page=page, size=size, **filters)
        found.extend(ids(listed))
        if not listed.has_next:
            return found
        assert len(listed.rows) == size
        page += 1


@pytest.mark.parametrize("size", [1, 7, 50])
def test_filters_agree_with_a_scan_page_after_page(many, size, monkeypatch):
    monkeypatch.setattr(runindex, "SLICE", 3)
    failed = lambda run: run.status == model.FAILED  # noqa: E731
    assert all_pages(many, size, status=model.FAILED) == expected(many, failed)
    odd = lambda run: run.name == "odd"  # noqa: E731
    assert all_pages(many, size, recipe="odd") == expected(many, odd)
    odd_failed = lambda run: odd(run) and failed(run)  # noqa: E731
    assert all_pages(many, size, recipe="odd", status=model.FAILED) == expected(
        many, odd_failed
    )
    young = lambda run: run.created >= 1030  # noqa: E731
    assert all_pages(many, size, since=1030) == expected(many, young)
    assert all_pages(many, size, since=1030, status=model.RUNNING) == expected(
        many, lambda run: young(run) and run.status == model.RUNNING
    )


def test_totals_come_from_the_counters(many):
    assert views.list_runs(many, status=model.FAILED).total == 14
    assert views.list_runs(many, recipe="even").total == 20
    assert views.list_runs(many, recipe="nobody").rows == []
    odd_failed = [n for n in range(1, 40, 2) if n % 3 == 0]
    both = views.list_runs(many, recipe="odd", status=model.FAILED)
    assert both.total == len(odd_failed) == len(both.rows)
    assert views.list_runs(many, recipe="nobody", status=model.FAILED).total == 0
    assert views.list_runs(many, since=1035).total is None


def test_an_open_count_refuses_to_merge_into_zero():
    counter = runindex.RunOpenCount(2)
    assert counter._p_resolveConflict(3, 2, 4) == 3
    with pytest.raises(ConflictError):
        counter._p_resolveConflict(2, 1, 1)


def test_the_last_two_messages_finished_at_once_still_succeed(runzeo):
    database = zeo.DB(runzeo.address, server_sync=True)
    try:
        with dispatch_state(database, write=True) as dispatch:
            broker.start_run(dispatch, TWO, {"guid": "pair"})
            for consumer in "ab":
                broker.claim(dispatch, "work", consumer)
        managers = [transaction.TransactionManager() for _ in "ab"]
        connections = [database.open(manager) for manager in managers]
        for manager, connection in zip(managers, connections, strict=True):
            manager.begin()
            dispatch = broker.get_dispatch(connection.root())
            run = dispatch.runs["pair"]
            (mine,) = [
                m
                for m in run.messages.values()
                if m.claimed_by["consumer"] == ("a" if manager is managers[0] else "b")
            ]
            broker.finish(dispatch, mine)
            # Each sees one message still open: neither files the run.
            assert dispatch.run_index.state_of["pair"] == model.RUNNING
        managers[0].commit()
        with pytest.raises(ConflictError):
            managers[1].commit()
        managers[1].abort()
        # Tried again, as consumers do: it now sees the zero itself.
        managers[1].begin()
        dispatch = broker.get_dispatch(connections[1].root())
        run = dispatch.runs["pair"]
        (left,) = [m for m in run.messages.values() if m.state == model.IN_PROGRESS]
        broker.finish(dispatch, left)
        managers[1].commit()
        for connection in connections:
            connection.close()

        def check(dispatch):
            return (
                dispatch.runs["pair"].status,
                dispatch.run_index.state_of["pair"],
                views.figures(dispatch)["runs"][model.SUCCEEDED],
            )

        assert read(database, check) == (model.SUCCEEDED, model.SUCCEEDED, 1)
    finally:
        database.close()


@pytest.fixture
def old_database(tmp_path):
    """A zeo DB on a runzeo serving a copy of ``unindexed.fs``."""
    shutil.copy(DATA, tmp_path / "Data.fs")
    server = RunzeoProcess(tmp_path)
    database = zeo.DB(server.address, server_sync=True)
    try:
        yield database
    finally:
        database.close()
        server.stop()


def test_a_database_made_before_the_index_is_indexed_once(old_database, caplog):
    def listing(dispatch):
        return (
            runindex.index_of(dispatch),
            ids(views.list_runs(dispatch, status=model.RUNNING)),
            views.figures(dispatch)["runs"],
        )

    with caplog.at_level(logging.WARNING, logger="dispatch.state.views"):
        index, running, counts = read(old_database, listing)
    assert index is None
    assert running == ["old-09", "old-08", "old-07", "old-06"]
    assert "no run index yet" in caplog.text
    wanted = {"running": 4, "succeeded": 4, "failed": 1, "cancelled": 1}
    assert counts == wanted
    assert ensure_run_index(old_database) is True
    assert ensure_run_index(old_database) is False
    index, running_now, counts_now = read(old_database, listing)
    assert index is not None
    assert read(old_database, views.figures)["dead_letters"] == {"old": 1}
    assert (running_now, counts_now) == (running, wanted)
    # Old runs move on in the index: one finishes, one is cancelled.
    with dispatch_state(old_database, write=True) as dispatch:
        assert isinstance(dispatch.runs["old-09"].open_count, runindex.RunOpenCount)
        assert type(dispatch.runs["old-00"].open_count) is Length  # closed: kept
        message = broker.claim(dispatch, "old", "today")
        broker.finish(dispatch, message)
        admin.cancel_run(dispatch, dispatch.runs["old-08"])
    finished = message.run_id
    index, running_after, counts_after = read(old_database, listing)
    assert finished not in running_after and "old-08" not in running_after
    assert counts_after == {**wanted, "running": 2, "succeeded": 5, "cancelled": 2}


def test_finishes_that_leave_messages_open_merge_without_conflict(runzeo):
    three = {"1": {"queue": "work"}, "start": [[1, {"n": n}] for n in range(3)]}
    database = zeo.DB(runzeo.address, server_sync=True)
    try:
        with dispatch_state(database, write=True) as dispatch:
            broker.start_run(dispatch, three, {"guid": "three"})
            for consumer in "abc":
                broker.claim(dispatch, "work", consumer)
        managers = [transaction.TransactionManager() for _ in "ab"]
        connections = [database.open(manager) for manager in managers]
        for consumer, manager, connection in zip(
            "ab", managers, connections, strict=True
        ):
            manager.begin()
            dispatch = broker.get_dispatch(connection.root())
            run = dispatch.runs["three"]
            (mine,) = [
                m for m in run.messages.values() if m.claimed_by["consumer"] == consumer
            ]
            broker.finish(dispatch, mine)
        for manager in managers:
            manager.commit()  # 3 - 1 - 1: resolved by the server, no conflict
        for connection in connections:
            connection.close()

        def check(dispatch):
            run = dispatch.runs["three"]
            return run.open_count(), dispatch.run_index.state_of["three"]

        assert read(database, check) == (1, model.RUNNING)
    finally:
        database.close()
