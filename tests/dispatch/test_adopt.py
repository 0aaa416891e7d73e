"""No orphaned programs: a ``command`` step's program outlives a runner
killed mid-command and is adopted, never started twice; a runner asked to
stop leaves it running for the next one; cancelling the run or
dead-lettering the message stops it.

Real runzeo, a real papa kernel, real runner processes (``dispatch
service CommandRunner`` and ``dispatch supervise``).  The step's program
appends its pid to a file (so every copy that ever ran is counted) and
waits for a "go" file the test creates when it wants the program to end.
"""

import contextlib
import os
import signal
import subprocess
import threading
import time

import pytest

import papa
import zeo
from dispatch.runtime.commandrunner import CommandRunner
from dispatch.runtime.service import make_consumer
from dispatch.runtime.supervisor import release_claims
from dispatch.state import broker, model, programs
from dispatch.state.database import dispatch_state
from tests.conftest import PYTHON
from tests.dispatch.conftest import wait_for_state, wait_until
from tests.dispatch.test_broker import start
from tests.dispatch.test_commandrunner import papa_kernel  # noqa: F401
from tests.dispatch.test_run_cli import TIMEOUT, dispatch, environment
from tests.dispatch.test_supervise import start_supervise, write_configuration

# argv: pid file, go file, exit status.  Gives up after 120 s on its own,
# so that a failed test never leaves it behind for long.
PROGRAM = """
import os, sys, time
with open(sys.argv[1], "a") as pids:
    pids.write(f"{os.getpid()}\\n")
print("started", flush=True)
deadline = time.monotonic() + 120
while not os.path.exists(sys.argv[2]) and time.monotonic() < deadline:
    time.sleep(0.05)
print("finished", flush=True)
sys.exit(int(sys.argv[3]))
"""


def recipe(tmp_path, status=0):
    pids, go = tmp_path / "pids", tmp_path / "go"
    command = [PYTHON, "-c", PROGRAM, str(pids), str(go), str(status)]
    return {"1": {"command": command}, "start": [[1, {}]]}


def program_pids(tmp_path):
    path = tmp_path / "pids"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def alive(pid):
    """True while *pid* runs (a zombie of the kernel counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def cleanup(tmp_path):
    """Ends whatever program a failed test left running."""
    yield
    (tmp_path / "go").touch()
    for pid in program_pids(tmp_path):
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def database(runzeo):
    # server_sync: what the runner processes committed just before the test
    # reads (a runner that has exited, say) is seen: dispatch_state's begin
    # makes a round trip first.
    database = zeo.DB(runzeo.address, server_sync=True)
    try:
        yield database
    finally:
        database.close()


def the_message(state, run_id):
    (message,) = state.runs[run_id].messages.values()
    return message


def claimed_by(run_id):
    def condition(state):
        message = the_message(state, run_id)
        attempt = message.attempts[-1] if message.attempts else None
        if attempt is None or not programs.program_of(attempt):
            return None
        return (message.claimed_by or {}).get("pid")

    return condition


def adopted(run_id):
    """Condition: a later delivery adopted the program of the first."""

    def condition(state):
        attempts = the_message(state, run_id).attempts
        record = programs.program_of(attempts[-1]) if len(attempts) > 1 else None
        return record and record.get("adopted")

    return condition


class Prompt(CommandRunner):
    """A runner whose failed deliveries come back at once."""

    backoff_base = 0.0


class Runner:
    """``dispatch service CommandRunner`` as a process of its own."""

    def __init__(self, runzeo, name="runner.1"):
        self.process = subprocess.Popen(
            [PYTHON, "-m", "dispatch.cli", "service", "CommandRunner"]
            + ["--consumer-name", name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(runzeo),
        )
        line = self.process.stdout.readline()
        assert "ready on queue dispatch.commands" in line, (
            line + self.process.stderr.read()
        )

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
        return self.process.communicate(timeout=TIMEOUT)


ONE_RUNNER = "<service commandrunner>\n  instances 1\n</service>\n"


@contextlib.contextmanager
def supervised(runzeo, kernel, tmp_path, services=ONE_RUNNER):
    """``dispatch supervise`` running *services* (one CommandRunner by
    default) for the block; stopped after it, and it must exit cleanly."""
    configuration = write_configuration(tmp_path, runzeo, kernel, services)
    supervise = start_supervise(runzeo, configuration)
    try:
        yield supervise
    finally:
        supervise.send_signal(signal.SIGTERM)
        _out, errors = supervise.communicate(timeout=TIMEOUT)
    assert supervise.returncode == 0, errors


def let_it_finish(database, tmp_path, run_id):
    """Let the waiting program end (its go file), and wait for the run's end."""
    (tmp_path / "go").touch()
    wait_for_state(
        database,
        lambda state: state.runs[run_id].status != model.RUNNING,
        what="the run to end",
    )


def test_a_runner_killed_mid_command_leaves_one_copy_that_is_adopted(
    runzeo,
    papa_kernel,  # noqa: F811
    database,
    tmp_path,
    cleanup,
):
    with supervised(runzeo, papa_kernel, tmp_path):
        run_id = start(database, recipe(tmp_path), now=None)
        first_runner = wait_for_state(
            database, claimed_by(run_id), what="the program to start"
        )
        (program_pid,) = wait_until(lambda: program_pids(tmp_path))
        os.kill(first_runner, signal.SIGKILL)

        wait_for_state(
            database, adopted(run_id), what="a new runner to adopt the program"
        )
        assert alive(program_pid)
        let_it_finish(database, tmp_path, run_id)

    assert program_pids(tmp_path) == [program_pid]  # one copy, ever
    with dispatch_state(database) as state:
        run = state.runs[run_id]
        assert run.status == model.SUCCEEDED
        message = the_message(state, run_id)
        first, second = message.attempts
        assert (first.outcome, first.pid) == ("died", first_runner)
        assert programs.program_of(first)["pid"] == program_pid
        assert programs.program_of(first)["adopted"] is False
        assert (second.outcome, second.exit_code) == ("done", 0)
        assert programs.program_of(second)["adopted"] is True
        assert programs.program_of(second)["pid"] == program_pid
        assert second.output_tail.endswith("finished")
    with papa.Papa(papa_kernel) as kernel:
        assert kernel.list_processes(f"{programs.PREFIX}.*") == {}
    shown = dispatch(runzeo, "show", run_id)
    assert f"pid {program_pid}, adopted" in shown.stdout, shown.stdout


def test_the_output_tail_shows_while_running_and_survives_a_killed_runner(
    runzeo,
    papa_kernel,  # noqa: F811
    database,
    tmp_path,
    cleanup,
):
    """The runner commits the tail of what it read every few seconds:
    ``dispatch show`` shows it while the program runs, and the runner that
    adopts the program after its follower was killed starts from it (papa
    had been told the output was read, so it cannot give it again)."""
    with supervised(runzeo, papa_kernel, tmp_path):
        run_id = start(database, recipe(tmp_path), now=None)
        first_runner = wait_for_state(
            database, claimed_by(run_id), what="the program to start"
        )

        def tail_noted(state):
            record = programs.program_of(the_message(state, run_id).attempts[0])
            return (record or {}).get("output_tail") == "started"

        wait_for_state(database, tail_noted, what="the tail to be committed")
        shown = dispatch(runzeo, "show", run_id)
        assert "attempt 1: running" in shown.stdout, shown.stdout
        assert "      | started" in shown.stdout, shown.stdout
        os.kill(first_runner, signal.SIGKILL)
        wait_for_state(
            database, adopted(run_id), what="a new runner to adopt the program"
        )
        let_it_finish(database, tmp_path, run_id)
    with dispatch_state(database) as state:
        first, second = the_message(state, run_id).attempts
        assert first.outcome == "died"
        assert (second.outcome, second.exit_code) == ("done", 0)
        assert second.output_tail == "started\nfinished"


def test_an_exit_code_seen_by_nobody_is_adopted(
    runzeo,
    papa_kernel,  # noqa: F811
    database,
    tmp_path,
    cleanup,
):
    runner = Runner(runzeo)
    try:
        run_id = start(database, recipe(tmp_path, status=0), now=None)
        runner_pid = wait_for_state(database, claimed_by(run_id), what="a claim")
        (program_pid,) = wait_until(lambda: program_pids(tmp_path))
        runner.process.kill()
    finally:
        runner.stop()
    (tmp_path / "go").touch()
    name = programs.program_name(run_id, 1, "")
    with papa.Papa(papa_kernel) as kernel:
        wait_until(
            lambda: (
                not any(
                    info["running"]
                    for info in kernel.list_processes(f"{name}*").values()
                )
            ),
            message="the program to end",
        )
    # What `dispatch supervise` does when an instance dies.
    reason = f"runner (pid {runner_pid}) died"
    released = release_claims(
        database, broker.COMMAND_QUEUE, runner_pid, reason, Prompt
    )
    assert len(released) == 1

    consumer = make_consumer(Prompt(), database, name="runner.2")
    try:
        assert consumer.process_one().state == model.DONE
    finally:
        consumer.close()
    assert program_pids(tmp_path) == [program_pid]
    with dispatch_state(database) as state:
        first, second = the_message(state, run_id).attempts
        assert first.outcome == "died"
        assert (second.outcome, second.exit_code) == ("done", 0)
        assert programs.program_of(second)["adopted"] is True
        assert second.output_tail.endswith("finished")


@pytest.mark.parametrize("how", ["SIGTERM", "dispatch shutdown"])
def test_a_runner_asked_to_stop_leaves_its_program_to_the_next(
    runzeo,
    papa_kernel,  # noqa: F811
    database,
    tmp_path,
    cleanup,
    how,
):
    runner = Runner(runzeo)
    try:
        run_id = start(database, recipe(tmp_path, status=0), now=None)
        wait_for_state(database, claimed_by(run_id), what="a claim")
        (program_pid,) = wait_until(lambda: program_pids(tmp_path))
        if how == "SIGTERM":
            runner.process.send_signal(signal.SIGTERM)
        else:
            completed = dispatch(runzeo, "shutdown", "CommandRunner")
            assert completed.returncode == 0, completed.stderr
        runner.process.wait(TIMEOUT)
    finally:
        runner.stop()
    assert runner.process.returncode == 0
    assert alive(program_pid)
    with dispatch_state(database) as state:
        message = the_message(state, run_id)
        assert message.state == model.PENDING
        (attempt,) = message.attempts
        assert "ProgramLeftRunning" in attempt.error
        assert attempt.output_tail == "started"
        # Handed back, not failed: due at once, and not counted towards
        # dead-lettering (a job outliving five runner restarts stays alive).
        assert attempt.outcome == "given back"
        assert (message.deliveries, message.counted_deliveries) == (1, 0)
        assert message.not_before <= time.time()

    (tmp_path / "go").touch()

    consumer = make_consumer(Prompt(), database, name="runner.2")
    try:
        wait_until(consumer.process_one, message="the message to come back")
    finally:
        consumer.close()
    assert program_pids(tmp_path) == [program_pid]
    with dispatch_state(database) as state:
        message = the_message(state, run_id)
        assert message.state == model.DONE
        second = message.attempts[-1]
        assert programs.program_of(second)["adopted"] is True
        assert second.output_tail == "started\nfinished"


def test_cancelling_the_run_stops_its_program(
    runzeo,
    papa_kernel,  # noqa: F811
    database,
    tmp_path,
    cleanup,
):
    runner = Runner(runzeo)
    try:
        run_id = start(database, recipe(tmp_path), now=None)
        wait_for_state(database, claimed_by(run_id), what="a claim")
        (program_pid,) = wait_until(lambda: program_pids(tmp_path))
        completed = dispatch(runzeo, "cancel", run_id)
        assert completed.returncode == 0, completed.stderr
        wait_until(lambda: not alive(program_pid), message="the program to stop")
        wait_for_state(
            database,
            lambda state: the_message(state, run_id).state != model.IN_PROGRESS,
            what="the runner to give the message up",
        )
    finally:
        out, errors = runner.stop()
    with dispatch_state(database) as state:
        assert state.runs[run_id].status == model.CANCELLED
        (attempt,) = the_message(state, run_id).attempts
        assert "ProgramCancelled" in attempt.error
        assert attempt.exit_code == -15
    with papa.Papa(papa_kernel) as kernel:
        assert kernel.list_processes(f"{programs.PREFIX}.*") == {}


# A run id papa would refuse in a name, and one longer than a file name.
@pytest.mark.parametrize("guid", [None, "a b:c.d/e", "long" * 100])
def test_a_dead_letter_left_running_is_stopped_by_the_next_runner(
    runzeo,
    papa_kernel,  # noqa: F811
    database,
    tmp_path,
    cleanup,
    guid,
):
    runner = Runner(runzeo)
    try:
        parameters = {"guid": guid} if guid else None
        run_id = start(database, recipe(tmp_path), parameters, now=None)
        runner_pid = wait_for_state(database, claimed_by(run_id), what="a claim")
        (program_pid,) = wait_until(lambda: program_pids(tmp_path))
        runner.process.kill()
    finally:
        runner.stop()

    class Once(CommandRunner):
        max_deliveries = 1

    release_claims(database, broker.COMMAND_QUEUE, runner_pid, "died", Once)
    with dispatch_state(database) as state:
        assert the_message(state, run_id).state == model.DEAD
    assert alive(program_pid)
    service = CommandRunner()
    consumer = make_consumer(service, database, name="runner.2")
    try:
        service.initializing()  # what a starting runner does first
    finally:
        consumer.close()
    assert not alive(program_pid)
    with papa.Papa(papa_kernel) as kernel:
        assert kernel.list_processes(f"{programs.PREFIX}.*") == {}


def test_a_long_program_keeps_its_claim(
    runzeo,
    papa_kernel,  # noqa: F811
    database,
    tmp_path,
    cleanup,
):
    class Brief(CommandRunner):
        lease = 1.0  # renewed every third of a second while it follows

    run_id = start(database, recipe(tmp_path), now=None)
    consumer = make_consumer(Brief(), database, name="runner.1")
    handled = []
    thread = threading.Thread(target=lambda: handled.append(consumer.process_one()))
    thread.start()
    try:
        wait_for_state(database, claimed_by(run_id), what="a claim")

        def renewed(state):
            """When the attempt started, once a renewal past its first
            lease is committed."""
            message = the_message(state, run_id)
            started = message.attempts[-1].started
            return message.lease_until - started > 2.5 and started

        started = wait_for_state(database, renewed, what="the claim to be renewed")
        # Well past the first lease: nothing lapsed for another runner.  It
        # looks at that moment (the renewal seen covers it), not at the
        # clock's: a loaded machine may delay the next renewal past the
        # 1 s lease, which is no fault of the renewing.
        other = make_consumer(Brief(), database, name="runner.2")
        try:
            assert other.process_one(now=started + 1.5) is None
        finally:
            other.close()
        (tmp_path / "go").touch()
    finally:
        (tmp_path / "go").touch()
        thread.join(TIMEOUT)
        consumer.close()
    assert handled[0].state == model.DONE
    assert len(program_pids(tmp_path)) == 1
    with dispatch_state(database) as state:
        message = the_message(state, run_id)
        assert message.deliveries == 1 and message.state == model.DONE
