"""``dispatch wrap --run ID --step N -- PROGRAM ARGS...``: run a program as
step N of a run and report into the recipe, as ``zocalo.wrap`` does.

Before the program starts, ``"Starting processing"`` goes to the step's
``starting`` channel; when it ends, ``{"exit_code", "output_tail"}`` goes to
``success`` (status 0) or ``failure`` (any other), and ``"Finished
processing"`` to ``completed``, each committed with the step's record.  The
step gets a message of its own (in progress while the program runs) with
one attempt: this process's pid, the exit code and the last lines of
output.  A failure makes that message a dead letter, so the run shows as
failed and ``dispatch retry`` can send it again.  The program's output is
passed through to ours; our exit status is the program's.
"""

from __future__ import annotations

import argparse
import io
import logging
import subprocess
import sys
import time
from typing import cast

from dispatch.cli import base
from dispatch.state import admin, broker, model
from dispatch.state.broker import Send
from dispatch.state.database import dispatch_state
from dispatch.state.programs import output_tail
from dispatch.state.wrapper import RecipeWrapper

logger = logging.getLogger(__name__)


def _wrapper(
    run: model.Run, message: model.Message, sends: list[Send]
) -> RecipeWrapper:
    def record(node: int, payload: object, path: list[int], delay: float) -> int:
        sends.append((node, payload, list(path), delay))
        return node

    return RecipeWrapper(
        run.recipe, message.node, [], run.environment, message.payload, record
    )


def _send_all(dispatch: model.Dispatch, run: model.Run, sends: list[Send]) -> None:
    for node, payload, path, delay in sends:
        broker.enqueue(dispatch, run, node, payload, path, run.environment, delay)


def run(options: argparse.Namespace) -> int:
    if not options.command:
        raise base.CommandError("give the program to run after --", base.EXIT_USAGE)
    database = base.open_database(options.zeo)
    try:
        with dispatch_state(database, write=True) as dispatch:
            run = dispatch.runs.get(options.run)
            if run is None:
                raise base.CommandError(f"no run {options.run!r}", base.EXIT_FAILED)
            if options.step not in run.steps:
                raise base.CommandError(
                    f"run {options.run} has no step {options.step}", base.EXIT_USAGE
                )
            message = admin.adopt_delivery(
                dispatch, run, options.step, {"command": options.command}, "wrap"
            )
            message_id = message.id
            sends: list[Send] = []
            _wrapper(run, message, sends).send_to("starting", "Starting processing")
            _send_all(dispatch, run, sends)
        output = bytearray()
        exit_code: int
        try:
            process = subprocess.Popen(
                options.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
        except OSError as error:
            exit_code, output = 127, bytearray(f"cannot start: {error}".encode())
        else:
            # stdout=PIPE: a buffered reader, whose read1 returns what is there.
            stream = cast(io.BufferedReader, process.stdout)
            for chunk in iter(lambda: stream.read1(65536), b""):
                output.extend(chunk)
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
            exit_code = process.wait()
        tail = output_tail(bytes(output))
        with dispatch_state(database, write=True) as dispatch:
            run = dispatch.runs[options.run]
            message = run.messages[message_id]
            sends = []
            wrapper = _wrapper(run, message, sends)
            result = {"exit_code": exit_code, "output_tail": tail}
            wrapper.send_to("success" if exit_code == 0 else "failure", result)
            wrapper.send_to("completed", "Finished processing")
            _send_all(dispatch, run, sends)
            now = time.time()
            if exit_code == 0:
                broker.finish(dispatch, message, now, exit_code, tail)
            else:
                attempt = message.attempts[-1]
                attempt.finished, attempt.outcome = now, "error"
                attempt.exit_code, attempt.output_tail = exit_code, tail
                attempt.error = f"exited with status {exit_code}"
                message.claimed_by = None
                broker.dead_letter(dispatch, message, attempt.error, now)
    finally:
        database.close()
    return exit_code


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, metavar="ID")
    parser.add_argument("--step", required=True, type=int, metavar="N")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- PROGRAM")
    base.add_zeo_option(parser)


def without_separator(argv: list[str]) -> list[str]:
    """*argv* without its first ``--`` (what follows it is the program)."""
    if "--" in argv:
        split = argv.index("--")
        argv = argv[:split] + argv[split + 1 :]
    return argv


COMMAND = base.Command(
    __name__,
    summary="run a program as a step, reporting into the run",
    description="Run a program as a step of a run, reporting into the recipe.",
    add_arguments=add_arguments,
    run=run,
    prepare=without_separator,
)
