"""Step kinds in one registry: the built-in kinds, and a new kind defined
here (one class, one register call) that recipes validate, the broker
routes and ``dispatch show`` and the progress table name."""

import pytest

from dispatch.cli import main
from dispatch.runtime.service import Service, load_service
from dispatch.state import broker, steps, views
from dispatch.state.database import dispatch_state
from dispatch.state.recipe import Recipe, RecipeError


class Pause(Service):
    """The service a pause step names; it is only loaded here, never run."""

    queue = "pause"


class PauseStep(steps.StepKind):
    """A step that waits ``pause`` seconds: ``{"pause": 5}``."""

    name = "pause"
    service = f"{__name__}:Pause"

    def recognises(self, step):
        return "pause" in step

    def problem(self, node, step):
        if "pause" in step and not isinstance(step["pause"], (int, float)):
            return f'Node "{node}" has an invalid "pause" ({step["pause"]!r})'
        return None

    def destination_queue(self, step):
        return "pause"

    def label(self, step):
        return f"pause {step['pause']}s"

    def describe(self, step):
        return f"pause of {step['pause']}s"


@pytest.fixture
def pause_kind():
    kind = steps.register(PauseStep())
    try:
        yield kind
    finally:
        steps.unregister(kind)


def recipe_with(step):
    return {"1": step, "start": [[1, {}]]}


def test_built_in_kinds_route_as_zocalo_and_our_extensions_do():
    assert steps.destination_queue({"queue": "a", "command": ["x"]}) == "a"
    # A topic is not a queue: its subscribers get copies (test_topics.py).
    assert steps.destination_queue({"topic": "t"}) is None
    assert steps.kind_of({"topic": "t"}).name == "queue"
    assert steps.destination_queue({"command": ["x"]}) == steps.COMMAND_QUEUE
    assert steps.destination_queue({"command": ["x"], "slurm": {}}) == (
        steps.COMMAND_QUEUE
    )
    assert steps.destination_queue({"service": "lonely"}) is None
    assert [
        steps.kind_of(step).name
        for step in (
            {"queue": "a"},
            {"command": ["x"]},
            {"command": ["x"], "slurm": {"partition": "p"}},
            {"service": "lonely"},
        )
    ] == ["queue", "command", "slurm", "unrouted"]


def test_built_in_kinds_name_steps_as_the_progress_table_always_did():
    assert steps.label({"service": "S", "queue": "a"}) == "S"
    assert steps.label({"queue": "a"}) == "a"
    assert steps.label({"topic": "t"}) == "t"
    assert steps.label({"command": ["echo", "hi"]}) == "echo hi"
    assert steps.label({}) == "-"
    assert steps.describe({"service": "S", "command": ["x"]}) == "S"
    assert steps.describe({"command": ["x"]}) is None


def test_the_command_runner_is_named_not_imported_by_the_state_layer():
    service = steps.service_of({"command": ["x"]})
    assert service == "dispatch.runtime.commandrunner:CommandRunner"
    assert load_service(service).queue == steps.COMMAND_QUEUE
    assert steps.service_of({"queue": "a"}) is None


def test_a_kind_checks_its_keys_whatever_the_step_routes_by():
    with pytest.raises(RecipeError, match='invalid "command"'):
        Recipe(recipe_with({"queue": "a", "command": "echo"})).validate()
    with pytest.raises(RecipeError, match='"slurm" but no "command"'):
        Recipe(recipe_with({"queue": "a", "slurm": {}})).validate()


def test_a_new_kind_is_validated_routed_and_served(pause_kind):
    with pytest.raises(RecipeError, match='Node "1" has an invalid "pause"'):
        Recipe(recipe_with({"pause": "soon"})).validate()
    Recipe(recipe_with({"pause": 2})).validate()
    assert steps.kind_of({"pause": 2}) is pause_kind
    assert steps.destination_queue({"pause": 2}) == "pause"
    assert load_service(steps.service_of({"pause": 2})) is Pause
    # A queue still routes by its queue: the new kind comes after it.
    assert steps.destination_queue({"pause": 2, "queue": "a"}) == "a"


def test_without_the_kind_the_same_step_is_dropped():
    assert steps.destination_queue({"pause": 2}) is None
    Recipe(recipe_with({"pause": "soon"})).validate()


def test_a_new_kind_is_shown(pause_kind, zeo_database, capsys):
    with dispatch_state(zeo_database, write=True) as dispatch:
        run = broker.start_run(dispatch, recipe_with({"pause": 2}))
        run_id = run.id
        (message,) = run.messages.values()
        assert message.queue == "pause"
    with dispatch_state(zeo_database) as dispatch:
        (row,) = views.step_rows(dispatch, run_id)
    assert row[:3] == ("1", "pause 2s", "pending")
    host, port = zeo_database.address
    assert main(["show", run_id, "--zeo", f"{host}:{port}"]) == 0
    assert "step 1 (pause of 2s): pending" in capsys.readouterr().out
