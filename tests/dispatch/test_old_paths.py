"""The module paths before the restructure still import, and objects pickled
under them (databases written before it) still load."""

import importlib

import pytest
import transaction
import ZODB
from ZODB.FileStorage import FileStorage

from dispatch.state import broker, model

# Old module -> the module it now is (the same object).
MOVED = {
    "dispatch.model": "dispatch.state.model",
    "dispatch.shards": "dispatch.state.shards",
    "dispatch.broker": "dispatch.state.broker",
    "dispatch.admin": "dispatch.state.admin",
    "dispatch.recipe": "dispatch.state.recipe",
    "dispatch.parameters": "dispatch.state.parameters",
    "dispatch.wrapper": "dispatch.state.wrapper",
    "dispatch.programs": "dispatch.state.programs",
    "dispatch.consumer": "dispatch.runtime.consumer",
    "dispatch.commandrunner": "dispatch.runtime.commandrunner",
    "dispatch.examples": "dispatch.runtime.examples",
}
# Old modules that gather names from several new ones.
GATHERED = {
    "dispatch.service": ["Service", "load_service", "make_consumer", "service_main"],
    "dispatch.supervise": [
        "Supervisor",
        "kernel_answers",
        "papa_address",
        "release_claims",
        "supervise_main",
    ],
    "dispatch.commands": [
        "CommandError",
        "dispatch_state",
        "go_main",
        "list_main",
        "open_database",
        "run_command",
        "run_document",
        "show_main",
        "wait_for_run",
    ],
    "dispatch.control": ["cancel_main", "drain_main", "retry_main", "shutdown_main"],
    "dispatch.deadletters": ["check_main", "purge", "purge_main", "reinject"],
    "dispatch.wrap": ["wrap_main"],
    "dispatch.validate": ["validate_main"],
    "dispatch.progress": ["LiveTable", "ProgressLines", "render", "step_rows"],
    "dispatch.jobs.cli": ["jobs_main", "parse_address"],
    "dispatch.cli": ["main"],
}
# Every persistent (or pickled) class of dispatch state that moved.
PERSISTENT = ["Dispatch", "Queue", "Run", "Step", "Message", "ServiceInstance"]


@pytest.mark.parametrize("old", sorted(MOVED))
def test_a_moved_module_is_its_new_module(old):
    assert importlib.import_module(old) is importlib.import_module(MOVED[old])


@pytest.mark.parametrize("old", sorted(GATHERED))
def test_an_old_module_still_has_its_names(old):
    module = importlib.import_module(old)
    missing = [name for name in GATHERED[old] if not hasattr(module, name)]
    assert missing == []


def test_old_entry_functions_still_run(capsys):
    from dispatch.validate import validate_main

    assert validate_main(["/nonexistent/recipe.json"]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_objects_stored_under_the_old_paths_still_load(tmp_path, monkeypatch):
    path = str(tmp_path / "Data.fs")
    # Write as the code before the move did: every class under dispatch.model.
    for name in [*PERSISTENT, "Delivery", "Attempt"]:
        monkeypatch.setattr(getattr(model, name), "__module__", "dispatch.model")
    database = ZODB.DB(FileStorage(path))
    manager = transaction.TransactionManager()
    connection = database.open(manager)
    dispatch = broker.get_dispatch(connection.root())
    run = broker.start_run(dispatch, {"1": {"queue": "a"}, "start": [[1, "x"]]})
    run_id = run.id
    message = broker.claim(dispatch, "a", "old-consumer")
    message.attempts = [*message.attempts, model.Attempt(0, 0.0, "h", 1, "c")]
    dispatch.instances["i"] = model.ServiceInstance("i", "S", "a", "h", 1, 0.0)
    manager.commit()
    connection.close()
    database.close()
    monkeypatch.undo()
    with open(path, "rb") as stream:
        assert b"dispatch.model" in stream.read()

    database = ZODB.DB(FileStorage(path, read_only=True))
    try:
        connection = database.open()
        dispatch = connection.root()[model.ROOT_KEY]
        run = dispatch.runs[run_id]
        (message,) = run.messages.values()
        loaded = [
            dispatch,
            dispatch.queues["a"],
            run,
            run.steps[1],
            message,
            dispatch.instances["i"],
        ]
        assert [type(item) for item in loaded] == [
            getattr(model, name) for name in PERSISTENT
        ]
        delivery, attempt = message.attempts
        assert type(delivery) is model.Delivery and type(attempt) is model.Attempt
        assert delivery.consumer == "old-consumer" and message.payload == "x"
        assert run.status == model.RUNNING
        connection.close()
    finally:
        database.close()


def test_new_objects_are_stored_under_the_new_paths():
    assert model.Run.__module__ == "dispatch.state.model"
