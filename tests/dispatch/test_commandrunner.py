"""``command`` steps run through a real papa kernel process: exit code,
output tail, routing on success, retry and dead letter on failure."""

import pytest

from dispatch.runtime.commandrunner import CommandRunner, output_tail
from dispatch.runtime.service import make_consumer
from dispatch.state import broker, model
from tests.conftest import PYTHON
from tests.dispatch.conftest import START_TIMEOUT
from tests.dispatch.test_broker import read, start
from tests.support import KernelProcess


@pytest.fixture
def papa_kernel(tmp_path, monkeypatch):
    """A papa kernel process on a free port, named by $DISPATCH_PAPA."""
    kernel = KernelProcess(tmp_path, debug=False, timeout=START_TIMEOUT).start()
    monkeypatch.setenv("DISPATCH_PAPA", str(kernel.port_or_path))
    try:
        yield kernel.port_or_path
    finally:
        kernel.stop()


RECIPE = {
    "1": {
        "command": [PYTHON, "-c", "print('line 1'); print('{word}')"],
        "output": {"success": 2},
    },
    "2": {"queue": "after"},
    "start": [[1, {}]],
}


def test_a_command_step_runs_through_papa_and_sends_on_success(
    zeo_database, papa_kernel
):
    run_id = start(zeo_database, RECIPE, {"word": "hello"}, now=None)
    consumer = make_consumer(CommandRunner(), zeo_database, name="runner")
    try:
        message = consumer.process_one()
        assert message is not None and message.state == model.DONE
    finally:
        consumer.close()

    def check(dispatch):
        run = dispatch.runs[run_id]
        (attempt,) = run.steps[1].messages(run)[0].attempts
        assert (attempt.exit_code, attempt.output_tail) == (0, "line 1\nhello")
        (forwarded,) = run.steps[2].messages(run)
        assert forwarded.payload == {"exit_code": 0, "output_tail": "line 1\nhello"}
        assert dispatch.runs[run_id].status == model.RUNNING  # step 2 waits

    read(zeo_database, check)


def test_a_failing_command_is_retried_then_dead_lettered(zeo_database, papa_kernel):
    recipe = {
        "1": {"command": [PYTHON, "-c", "import sys; print('oops'); sys.exit(3)"]},
        "start": [[1, {}]],
    }
    run_id = start(zeo_database, recipe, now=None)

    class Impatient(CommandRunner):
        max_deliveries = 2
        backoff_base = 0.0

    consumer = make_consumer(Impatient(), zeo_database, name="runner")
    try:
        assert consumer.process_one().state == model.PENDING
        assert consumer.process_one().state == model.DEAD
    finally:
        consumer.close()

    def check(dispatch):
        run = dispatch.runs[run_id]
        (message,) = run.messages.values()
        assert [a.exit_code for a in message.attempts] == [3, 3]
        assert message.attempts[-1].output_tail == "oops"
        assert message.reason == (
            "dead-lettered after 2 deliveries; last: "
            "CommandFailed: command exited with status 3"
        )
        assert run.status == model.FAILED

    read(zeo_database, check)


def test_output_tail_keeps_the_last_lines():
    data = "".join(f"{n}\n" for n in range(100)).encode()
    assert output_tail(data).splitlines() == [str(n) for n in range(80, 100)]
    assert broker.destination_queue(RECIPE["1"]) == "dispatch.commands"


def test_the_attempt_names_the_program_and_its_pid(zeo_database, papa_kernel):
    from dispatch.state import programs

    recipe = {
        "1": {
            "command": [
                PYTHON,
                "-c",
                "import os; print(os.environ['DISPATCH_RUN'], "
                "os.environ['DISPATCH_STEP'], os.environ['DISPATCH_PAPA']); "
                "print(os.getpid())",
            ]
        },
        "start": [[1, {}]],
    }
    run_id = start(zeo_database, recipe, now=None)
    service = CommandRunner()
    service.prefetch = 5  # a runner follows one program at a time regardless
    consumer = make_consumer(service, zeo_database, name="runner")
    try:
        assert consumer.prefetch == 1
        assert consumer.process_one().state == model.DONE
    finally:
        consumer.close()

    def check(dispatch):
        run = dispatch.runs[run_id]
        (message,) = run.messages.values()
        (attempt,) = message.attempts
        record = programs.program_of(attempt)
        assert record["name"] == programs.program_name(run_id, 1, message.id)
        seen, pid = attempt.output_tail.splitlines()
        # The runner's environment, and which run and step this is.
        assert seen.split() == [run_id, "1", str(papa_kernel)]
        assert record["pid"] == int(pid)
        assert (record["adopted"], record["exit_code"]) == (False, 0)
        assert attempt.slurm_job is None

    read(zeo_database, check)
