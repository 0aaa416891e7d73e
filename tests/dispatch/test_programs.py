"""Races and edge cases of ``command`` step programs (see
:mod:`dispatch.programs`): a program that ends just as its runner loses the
message, a cancel that lands between the start and the watch, a program
that writes without pause, exit by signal, names papa would refuse.

Real zeo server (in a thread), a real papa kernel process, runners as
threads with consumers of their own.  Where a test needs a race to go one
way, a runner subclass holds the moment (named so below); every commit and
every program is real.
"""

import os
import signal
import threading
import time
from pathlib import Path

import pytest

import papa
import zeo
from dispatch.runtime.commandrunner import CommandRunner, describe_end
from dispatch.runtime.service import make_consumer
from dispatch.state import admin, broker, model, programs
from dispatch.state.database import dispatch_state
from papa.process import check_name
from tests.conftest import PYTHON
from tests.dispatch.conftest import wait_for_state, wait_until
from tests.dispatch.test_adopt import (  # noqa: F401
    PROGRAM,
    alive,
    claimed_by,
    cleanup,
    program_pids,
    recipe,
    the_message,
)
from tests.dispatch.test_broker import start
from tests.dispatch.test_commandrunner import papa_kernel  # noqa: F401
from tests.dispatch.test_run_cli import TIMEOUT
from zeo.exceptions import ClientDisconnected


def step_programs(port):
    with papa.Papa(port) as kernel:
        return kernel.list_processes(f"{programs.PREFIX}.*")


def wait_for(database, condition, what):
    """Poll ``condition(dispatch)`` on fresh transactions until true."""
    return wait_for_state(database, condition, TIMEOUT, what)


class Follower:
    """A runner following one message in a thread of its own."""

    def __init__(self, service, database, name="runner.1"):
        self.consumer = make_consumer(service, database, name=name)
        self.handled = []
        self.raised = []
        self.thread = threading.Thread(target=self._handle_one)
        self.thread.start()

    def _handle_one(self):
        try:
            self.handled.append(self.consumer.process_one())
        except Exception as error:  # the runner would end with it
            self.raised.append(error)

    def join(self):
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "the runner did not finish"
        self.consumer.close()


class Inattentive(CommandRunner):
    """Holds the race: a runner that has not yet looked at its wake-ups, so
    the end of its program reaches it before the news that its claim is
    gone."""

    def _check(self, papa, name, recipe_wrapper, cancelled):
        return cancelled


def take_over(database):
    """What a second runner's claim does once the first one's lease has
    lapsed: the lapsed claim is released (a real commit, dated past the
    lease)."""
    later = time.time() + CommandRunner.lease + 1
    with dispatch_state(database, write=True) as state:
        assert broker.claim(state, broker.COMMAND_QUEUE, "runner.2", now=later) is None


def test_a_program_ending_as_its_runner_loses_the_message_is_not_run_again(
    zeo_database,
    papa_kernel,  # noqa: F811
    tmp_path,
    cleanup,  # noqa: F811
):
    run_id = start(zeo_database, recipe(tmp_path), now=None)
    first = Follower(Inattentive(), zeo_database)
    try:
        wait_for(zeo_database, claimed_by(run_id), "a claim")
        (program_pid,) = wait_until(lambda: program_pids(tmp_path))
        take_over(zeo_database)
        (tmp_path / "go").touch()  # the program ends; runner.1 sees it
    finally:
        (tmp_path / "go").touch()
        first.join()
    # Its exit code is still in papa, for whoever has the message now.
    (info,) = step_programs(papa_kernel).values()
    assert info["running"] is False

    second = make_consumer(CommandRunner(), zeo_database, name="runner.2")
    try:
        later = time.time() + 2 * CommandRunner.lease
        assert second.process_one(now=later).state == model.DONE
    finally:
        second.close()
    assert program_pids(tmp_path) == [program_pid]  # one copy, ever
    with dispatch_state(zeo_database) as state:
        lapsed, adopted = the_message(state, run_id).attempts
        assert lapsed.outcome == "lapsed"
        assert (adopted.outcome, adopted.exit_code) == ("done", 0)
        assert programs.program_of(adopted)["adopted"] is True
    assert step_programs(papa_kernel) == {}


def test_a_cancel_between_start_and_watch_stops_the_program(
    zeo_database,
    papa_kernel,  # noqa: F811
    tmp_path,
    cleanup,  # noqa: F811
):
    run_id = start(zeo_database, recipe(tmp_path), now=None)

    class CancelledMeanwhile(CommandRunner):
        """Holds the race: the run is cancelled (a real commit) right
        after the program started, before the runner watches it."""

        def _start(self, *arguments):
            started = super()._start(*arguments)
            with dispatch_state(zeo_database, write=True) as state:
                admin.cancel_run(state, state.runs[run_id])
            return started

    runner = Follower(CancelledMeanwhile(), zeo_database)
    try:
        # The runner gives up the message once the program is stopped
        # (without the fix it followed the program to its end).
        wait_for(
            zeo_database,
            lambda state: the_message(state, run_id).state != model.IN_PROGRESS,
            "the runner to cancel the program",
        )
    finally:
        runner.join()
        (tmp_path / "go").touch()
    assert not any(alive(pid) for pid in program_pids(tmp_path))
    with dispatch_state(zeo_database) as state:
        (attempt,) = the_message(state, run_id).attempts
        assert "ProgramCancelled" in attempt.error
        assert "killed by signal 15 (SIGTERM)" in attempt.error
        assert attempt.exit_code == -15
    assert step_programs(papa_kernel) == {}


def test_a_cancelled_run_starts_no_program(
    zeo_database,
    papa_kernel,  # noqa: F811
    tmp_path,
    cleanup,  # noqa: F811
):
    run_id = start(zeo_database, recipe(tmp_path), now=None)

    class CancelledAfterClaim(CommandRunner):
        """Holds the race: the run is cancelled just after the claim."""

        def handle(self, recipe_wrapper, payload):
            with dispatch_state(zeo_database, write=True) as state:
                admin.cancel_run(state, state.runs[run_id])
            return super().handle(recipe_wrapper, payload)

    consumer = make_consumer(CancelledAfterClaim(), zeo_database, name="runner")
    try:
        consumer.process_one()
    finally:
        consumer.close()
    assert program_pids(tmp_path) == []
    with dispatch_state(zeo_database) as state:
        (attempt,) = the_message(state, run_id).attempts
        assert "not started: its run is cancelled" in attempt.error
    assert step_programs(papa_kernel) == {}


def test_of_two_runners_starting_one_message_one_adopts_the_others_program(
    zeo_database,
    papa_kernel,  # noqa: F811
    tmp_path,
    cleanup,  # noqa: F811
):
    steps = recipe(tmp_path)
    run_id = start(zeo_database, steps, now=None)

    class Overtaken(CommandRunner):
        """Holds the race: another runner (whose claim lapsed as this one
        took the message) starts the program, with an environment of its
        own, between this runner's look in papa and its start."""

        def _may_start(self, name, message):
            super()._may_start(name, message)
            program, *arguments = steps["1"]["command"]
            with papa.Papa(papa_kernel) as other:
                other.make_process(
                    name, program, args=arguments, env={"OTHER": "1"}, stdout=papa.PIPE
                )

    runner = Follower(Overtaken(), zeo_database)
    try:
        wait_until(lambda: program_pids(tmp_path))
        (tmp_path / "go").touch()
    finally:
        (tmp_path / "go").touch()
        runner.join()
    assert len(program_pids(tmp_path)) == 1
    with dispatch_state(zeo_database) as state:
        message = the_message(state, run_id)
        assert message.state == model.DONE
        (attempt,) = message.attempts
        assert programs.program_of(attempt)["adopted"] is True
    assert step_programs(papa_kernel) == {}


CHATTY = """
import os, sys
while not os.path.exists(sys.argv[1]):
    sys.stdout.write("x" * 4000 + "\\n")
    sys.stdout.flush()
"""


def test_a_program_writing_without_pause_keeps_its_claim_and_can_be_cancelled(
    zeo_database,
    papa_kernel,  # noqa: F811
    tmp_path,
):
    go = tmp_path / "go"
    chatty = {
        "1": {"command": [PYTHON, "-c", CHATTY, str(go)]},
        "start": [[1, {}]],
    }
    run_id = start(zeo_database, chatty, now=None)

    class Brief(CommandRunner):
        lease = 1.0  # renewed every third of a second while it follows

    runner = Follower(Brief(), zeo_database)
    try:

        def renewed(state):
            message = the_message(state, run_id)
            if not message.attempts or message.lease_until is None:
                return False
            return message.lease_until - message.attempts[-1].started > 2.5

        wait_for(zeo_database, renewed, "the claim to be renewed")
        with dispatch_state(zeo_database, write=True) as state:
            admin.cancel_run(state, state.runs[run_id])
        wait_for(
            zeo_database,
            lambda state: the_message(state, run_id).state != model.IN_PROGRESS,
            "the runner to cancel the program",
        )
    finally:
        go.touch()
        runner.join()
    with dispatch_state(zeo_database) as state:
        message = the_message(state, run_id)
        assert message.deliveries == 1
        (attempt,) = message.attempts
        assert "ProgramCancelled" in attempt.error
        # Only a tail is kept, however much the program wrote.
        assert len(attempt.output_tail) <= 4096
    assert step_programs(papa_kernel) == {}


def test_a_program_killed_by_a_signal_says_so_and_leaves_nothing_in_papa(
    zeo_database,
    papa_kernel,  # noqa: F811
):
    suicide = "import os, signal; print('bye', flush=True); os.kill(os.getpid(), 9)"
    run_id = start(
        zeo_database,
        {"1": {"command": [PYTHON, "-c", suicide]}, "start": [[1, {}]]},
        now=None,
    )

    class Once(CommandRunner):
        max_deliveries = 1

    consumer = make_consumer(Once(), zeo_database, name="runner")
    try:
        assert consumer.process_one().state == model.DEAD
    finally:
        consumer.close()
    with dispatch_state(zeo_database) as state:
        message = the_message(state, run_id)
        (attempt,) = message.attempts
        assert (attempt.exit_code, attempt.output_tail) == (-9, "bye")
        assert attempt.error == "CommandFailed: command killed by signal 9 (SIGKILL)"
    assert step_programs(papa_kernel) == {}


def test_exit_descriptions():
    assert describe_end(3) == "command exited with status 3"
    assert describe_end(-15) == "command killed by signal 15 (SIGTERM)"
    assert describe_end(3, "FAILED") == "command exited with status 3"
    assert describe_end(-15, "TIMEOUT") == "Slurm job ended TIMEOUT (status -15)"
    assert describe_end(-9, "OUT_OF_MEMORY").startswith("Slurm job ended OUT_OF_")
    assert "exit code is unknown" in describe_end(papa.process.UNKNOWN_EXIT_CODE)


ODD_RUN_IDS = ["plain-42", "with space:colon.dot/slash", "é" * 10, "x" * 3000]


def test_program_names_are_short_valid_distinct_and_lead_back_to_the_message(
    zeo_database,
):
    names = {}
    for run_id in ODD_RUN_IDS + ["with_space_colon_dot_slash"]:
        start(zeo_database, recipe_for_guid(run_id), {"guid": run_id}, now=None)
    with dispatch_state(zeo_database) as state:
        digested = {}
        for run_id in ODD_RUN_IDS + ["with_space_colon_dot_slash"]:
            (message,) = state.runs[run_id].messages.values()
            name = programs.program_name(run_id, 1, message.id)
            check_name(name, "process")  # what papa refuses, it raises
            assert len(name) <= 160 and name.isascii()
            assert programs.message_of(state, name, digested) is message
            assert programs.message_of(state, name) is message
            names[name] = run_id
    assert len(names) == len(ODD_RUN_IDS) + 1
    assert programs.program_name("plain-42", 1, "m") == "dispatch-step.plain-42.1.m"


def recipe_for_guid(run_id):
    return {"1": {"command": [PYTHON, "-c", "pass"]}, "start": [[1, {}]]}


def test_papa_accepts_a_long_odd_name(
    zeo_database,
    papa_kernel,  # noqa: F811
):
    run_id = ODD_RUN_IDS[1] + "x" * 500
    start(zeo_database, recipe_for_guid(run_id), {"guid": run_id}, now=None)
    consumer = make_consumer(CommandRunner(), zeo_database, name="runner")
    try:
        assert consumer.process_one().state == model.DONE
    finally:
        consumer.close()
    assert step_programs(papa_kernel) == {}


def test_a_papa_kernel_gone_mid_command_gives_the_message_back(
    zeo_database,
    papa_kernel,  # noqa: F811
    tmp_path,
    cleanup,  # noqa: F811
):
    run_id = start(zeo_database, recipe(tmp_path), now=None)
    runner = Follower(CommandRunner(), zeo_database)
    try:
        wait_for(zeo_database, claimed_by(run_id), "a claim")
        wait_until(lambda: program_pids(tmp_path))
        kernel_pid = kernel_process_of(papa_kernel)
        os.kill(kernel_pid, signal.SIGKILL)
    finally:
        runner.join()
    (handled,) = runner.handled  # the runner itself goes on
    with dispatch_state(zeo_database) as state:
        message = the_message(state, run_id)
        assert message.state == model.PENDING  # to be tried again, not lost
        (attempt,) = message.attempts
        assert attempt.outcome == "error"
        assert attempt.error.startswith(f"KernelLost: papa kernel {papa_kernel}: ")
        assert "Lost connection" in attempt.error


def kernel_process_of(port):
    """The pid of the papa kernel process listening on *port* (started by
    the papa_kernel fixture as ``python -m papa -p PORT``)."""
    wanted = ["-m", "papa", "-p", str(port)]
    for entry in Path("/proc").iterdir():
        try:
            words = (entry / "cmdline").read_bytes().decode().split("\0")
        except (OSError, ValueError):
            continue
        if words[1:5] == wanted:
            return int(entry.name)
    raise AssertionError(f"no papa kernel on port {port}")


@pytest.mark.slow
def test_zeo_gone_mid_command_leaves_the_end_in_papa_for_the_next_runner(
    papa_kernel,  # noqa: F811
    tmp_path,
    cleanup,  # noqa: F811
):
    path = str(tmp_path / "Data.fs")
    address, stop = zeo.server(path=path)
    database = zeo.DB(address)
    try:
        run_id = start(database, recipe(tmp_path), now=None)
        runner = Follower(CommandRunner(), database)
        wait_for(database, claimed_by(run_id), "a claim")
        (program_pid,) = wait_until(lambda: program_pids(tmp_path))
        stop()
        (tmp_path / "go").touch()
        # Each commit waits for the server (30 s) before giving up.
        runner.thread.join(3 * TIMEOUT)
        assert not runner.thread.is_alive()
        (error,) = runner.raised
        assert isinstance(error, ClientDisconnected)
    finally:
        database.close()
    (info,) = step_programs(papa_kernel).values()
    assert info["running"] is False  # its end kept, unacknowledged

    address, stop = zeo.server(path=path)
    database = zeo.DB(address)
    try:
        take_over(database)  # the dead runner's claim lapses
        second = make_consumer(CommandRunner(), database, name="runner.2")
        try:
            later = time.time() + 2 * CommandRunner.lease
            assert second.process_one(now=later).state == model.DONE
        finally:
            second.close()
        with dispatch_state(database) as state:
            first, adopted = the_message(state, run_id).attempts
            assert first.outcome == "lapsed"
            # (output runner.1 had read and acknowledged is not in the tail)
            assert (adopted.outcome, adopted.exit_code) == ("done", 0)
            assert programs.program_of(adopted)["adopted"] is True
    finally:
        database.close()
        stop()
    assert program_pids(tmp_path) == [program_pid]
    assert step_programs(papa_kernel) == {}
