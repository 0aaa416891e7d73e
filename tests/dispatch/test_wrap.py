"""``dispatch wrap`` as a real process on runzeo: the step's starting,
success/failure and completed channels, its attempt, and the exit status."""

import zeo
from dispatch.state import model
from dispatch.state.database import dispatch_state
from tests.conftest import PYTHON
from tests.dispatch.test_broker import start
from tests.dispatch.test_control import dispatch_command

RECIPE = {
    "1": {
        "service": "wrapped program",
        "output": {"starting": 2, "success": 3, "failure": 4, "completed": 5},
    },
    "2": {"queue": "starting"},
    "3": {"queue": "success"},
    "4": {"queue": "failure"},
    "5": {"queue": "completed"},
    "start": [[1, {}]],
}


def wrapped_run(runzeo, code):
    database = zeo.DB(runzeo.address)
    try:
        run_id = start(database, RECIPE, now=None)
    finally:
        database.close()
    program = f"import sys; print('working'); sys.exit({code})"
    completed = dispatch_command(
        runzeo, "wrap", "--run", run_id, "--step", "1", "--", PYTHON, "-c", program
    )
    database = zeo.DB(runzeo.address)
    try:
        with dispatch_state(database) as dispatch:
            run = dispatch.runs[run_id]
            sent = {
                node: [m.payload for m in run.steps[node].messages(run)]
                for node in (2, 3, 4, 5)
            }
            (message,) = run.steps[1].messages(run)
            attempt = message.attempts[0]
            facts = (run.status, message.state, attempt.exit_code, attempt.output_tail)
    finally:
        database.close()
    return completed, sent, facts


def test_wrap_success(runzeo):
    completed, sent, facts = wrapped_run(runzeo, 0)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "working\n"
    assert sent == {
        2: ["Starting processing"],
        3: [{"exit_code": 0, "output_tail": "working"}],
        4: [],
        5: ["Finished processing"],
    }
    assert facts == (model.RUNNING, model.DONE, 0, "working")  # 2, 3, 5 pending


def test_wrap_failure_is_a_dead_letter_and_the_exit_status(runzeo):
    completed, sent, facts = wrapped_run(runzeo, 3)
    assert completed.returncode == 3
    assert sent[3] == [] and sent[4] == [{"exit_code": 3, "output_tail": "working"}]
    assert facts == (model.FAILED, model.DEAD, 3, "working")


def test_wrap_usage_errors(runzeo):
    missing = dispatch_command(
        runzeo, "wrap", "--run", "nope", "--step", "1", "--", "true"
    )
    assert missing.returncode == 1 and "no run 'nope'" in missing.stderr
    no_program = dispatch_command(runzeo, "wrap", "--run", "nope", "--step", "1")
    assert no_program.returncode == 2
