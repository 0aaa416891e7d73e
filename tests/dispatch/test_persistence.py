"""Runs recorded in zeo (a real server on 127.0.0.1 with a FileStorage)."""

import json
import threading

import pytest
import transaction

from dispatch.jobs import DoJobber, DummyJob, Job, RunonlyJob, persist, view
from dispatch.jobs.cli import jobs_main


def make_graph(events, broken=True):
    """Prepare <- (Flaky, Broken?) <- Top; every Check/Run appends to *events*."""

    class Prepare(Job):
        def Check(self):
            events.append("Prepare.check")
            if self._check_phase == "check":
                raise RuntimeError("nothing prepared")
            self.global_storage["prepared"] = "yes"
            return {"prepared": True}

        def Run(self):
            events.append("Prepare.run")

    class Flaky(Job):
        DEPS = [Prepare]

        def Check(self):
            events.append("Flaky.check")
            if events.count("Flaky.run") < 2:
                raise RuntimeError(f"Flaky ran {events.count('Flaky.run')} times")
            return self.global_storage["prepared"]

        def Run(self):
            events.append("Flaky.run")

    class Broken(RunonlyJob):
        DEPS = [Prepare]
        TRIES = 2

        def Run(self):
            events.append("Broken.run")
            if broken:
                raise OSError("disk on fire")

    class Top(DummyJob):
        DEPS = [Flaky, Broken]

    return Top


def read_run(database, name):
    connection = database.open()
    try:
        run = persist.load_run(connection, name)
        return run, view.run_rows(run), connection
    except BaseException:
        connection.close()
        raise


def rows_by_name(database, name):
    run, rows, connection = read_run(database, name)
    try:
        return {row["name"]: row for row in rows}, run.state, list(run.sessions)
    finally:
        connection.close()


def test_each_attempt_is_recorded(zeo_database):
    events = []
    dojob = DoJobber(db=zeo_database, run_name="first")
    dojob.configure(make_graph(events), default_retry_delay=0)
    dojob.checknrun()
    assert dojob.nodestatus == {
        "Prepare": True,
        "Flaky": True,
        "Broken": False,
        "Top": None,
    }
    rows, state, sessions = rows_by_name(zeo_database, "first")
    assert state == "finished"
    assert [session["state"] for session in sessions] == ["finished"]
    assert sessions[0]["success"] is False
    assert rows["Prepare"]["status"] == "eventually passed"
    assert rows["Flaky"]["attempts"] == 2
    assert rows["Broken"]["status"] == "failed"
    assert rows["Broken"]["attempts"] == 2
    assert rows["Broken"]["last_error"] == "OSError: disk on fire"
    assert rows["Top"]["status"] == "blocked"
    assert rows["Top"]["blocked_by"] == ["Broken"]
    assert rows["Prepare"]["result"] == "{'prepared': True}"


def test_a_new_session_keeps_successes_and_retries_failures(zeo_database):
    events = []
    dojob = DoJobber(db=zeo_database, run_name="again")
    dojob.configure(make_graph(events), default_retry_delay=0)
    dojob.checknrun()
    assert events.count("Broken.run") == 2

    events.clear()
    fixed = DoJobber(db=zeo_database, run_name="again")
    fixed.configure(make_graph(events, broken=False), default_retry_delay=0)
    fixed.checknrun()
    assert fixed.success()
    # Prepare and Flaky succeeded before: not checked, not run again.
    assert events == ["Broken.run"]
    assert fixed.noderesults["Prepare"] == {"prepared": True}
    assert fixed.global_storage == {"prepared": "yes"}
    rows, state, sessions = rows_by_name(zeo_database, "again")
    assert [session["number"] for session in sessions] == [1, 2]
    assert sessions[-1]["success"] is True
    assert rows["Broken"]["attempts"] == 3
    assert rows["Top"]["status"] == "passed"


def test_the_same_object_keeps_its_tries_across_calls(zeo_database):
    events = []
    dojob = DoJobber(db=zeo_database, run_name="same")
    dojob.configure(make_graph(events), default_retry_delay=0)
    dojob.checknrun()
    events.clear()
    dojob.checknrun()
    assert events == []  # Broken has no tries left; the others are done
    assert dojob.nodestatus["Broken"] is None
    assert dojob.nodereasons["Broken"] == {"reason": "out_of_tries"}


def test_a_connection_can_be_given_instead_of_a_database(zeo_database):
    manager = transaction.TransactionManager()
    connection = zeo_database.open(transaction_manager=manager)
    try:
        dojob = DoJobber(db=connection, run_name="connected")
        dojob.configure(DummyJob)
        dojob.checknrun()
        dojob.close()  # the caller's connection stays open
        assert dojob.success()
        assert persist.load_run(connection, "connected").nodes["DummyJob"].status
    finally:
        connection.close()


def test_unpicklable_results_and_storage_are_described_not_lost(zeo_database):
    class Unpicklable(Job):
        def Check(self):
            self.global_storage["lock"] = threading.Lock()
            self.global_storage["plain"] = [1, 2]
            return threading.Lock()

    dojob = DoJobber(db=zeo_database, run_name="odd")
    dojob.configure(Unpicklable)
    dojob.checknrun()
    assert dojob.success()
    run, rows, connection = read_run(zeo_database, "odd")
    try:
        assert "lock" in rows[0]["result"]
        assert run.global_storage.value == {"plain": [1, 2]}
    finally:
        connection.close()


def test_an_interrupted_session_is_adopted(zeo_database):
    """A session left 'running' (its process died) continues where it was:
    same tries left; the attempt that was running counts as failed."""
    events = []
    dojob = DoJobber(db=zeo_database, run_name="adopt")
    dojob.configure(make_graph(events), default_retry_delay=0)
    store = persist.RunStore(zeo_database, "adopt")
    store.open_session(dojob)
    dojob._phase_used = True
    dojob._books["Prepare"].tries_left -= 1
    dojob.nodeattempts["Prepare"] = 1
    store.attempt_started(dojob, "Prepare", 0)  # ...and the process dies here
    store.close()

    events.clear()
    resumed = DoJobber(db=zeo_database, run_name="adopt")
    resumed.configure(make_graph(events, broken=False), default_retry_delay=0)
    resumed.checknrun()
    assert resumed.success()
    rows, state, sessions = rows_by_name(zeo_database, "adopt")
    assert len(sessions) == 1 and sessions[0]["adoptions"] == 1
    assert rows["Prepare"]["attempts"] == 2
    connection = zeo_database.open()
    try:
        attempts = persist.load_run(connection, "adopt").nodes["Prepare"].attempts
        assert [attempt["state"] for attempt in attempts] == ["interrupted", "ended"]
    finally:
        connection.close()


def test_a_run_held_by_a_live_process_is_refused(zeo_database, monkeypatch):
    dojob = DoJobber(db=zeo_database, run_name="busy")
    dojob.configure(DummyJob)
    store = persist.RunStore(zeo_database, "busy")
    store.open_session(dojob)
    store.close()
    # Pretend the session belongs to another live process on this host.
    monkeypatch.setattr(persist.os, "getpid", lambda: 1)
    other = DoJobber(db=zeo_database, run_name="busy")
    other.configure(DummyJob)
    with pytest.raises(persist.RunBusyError, match="being run by process"):
        other.checknrun()


def test_bad_arguments_are_refused():
    with pytest.raises(TypeError, match="together"):
        DoJobber(run_name="lonely")
    with pytest.raises(TypeError, match="non-empty"):
        DoJobber(db=object(), run_name="")
    with pytest.raises(TypeError, match="unexpected"):
        DoJobber(database=None)


def test_show_and_graph_commands(zeo_database, capsys, tmp_path):
    events = []
    dojob = DoJobber(db=zeo_database, run_name="shown")
    dojob.configure(make_graph(events), default_retry_delay=0)
    dojob.checknrun()
    address = "{}:{}".format(*zeo_database.address)

    assert jobs_main(["--zeo", address, "list"]) == 0
    assert capsys.readouterr().out.splitlines() == ["shown"]

    assert jobs_main(["--zeo", address, "show", "shown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("run shown: finished, session 1")
    table = {line.split()[0]: line for line in lines[2:]}
    assert "failed" in table["Broken"] and "OSError: disk on fire" in table["Broken"]
    assert "blocked by Broken" in table["Top"]

    assert jobs_main(["--zeo", address, "show", "shown", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert {job["name"]: job["attempts"] for job in document["jobs"]} == {
        "Prepare": 1,
        "Flaky": 2,
        "Broken": 2,
        "Top": 0,
    }

    output = tmp_path / "run.dot"
    assert jobs_main(["--zeo", address, "graph", "shown", "-o", str(output)]) == 0
    dot = output.read_text()
    assert "Broken [style=filled, color=red];" in dot
    assert "Top [style=filled, color=orange];" in dot
    assert "Prepare [style=filled, color=darkgreen];" in dot
    assert "Top -> Flaky;" in dot

    assert jobs_main(["--zeo", address, "show", "missing"]) == 1
    assert "no run named 'missing'" in capsys.readouterr().err
