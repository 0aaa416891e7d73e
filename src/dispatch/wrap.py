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

import argparse
import logging
import subprocess
import sys
import time

from dispatch import admin, broker
from dispatch.commandrunner import output_tail
from dispatch.commands import (
    EXIT_FAILED,
    EXIT_USAGE,
    CommandError,
    add_zeo_option,
    dispatch_state,
    open_database,
    run_command,
)
from dispatch.wrapper import RecipeWrapper

logger = logging.getLogger(__name__)


def _wrapper(dispatch, run, message, sends):
    def record(node, payload, path, delay):
        sends.append((node, payload, list(path), delay))
        return node

    return RecipeWrapper(
        run.recipe, message.node, [], run.environment, message.payload, record
    )


def _send_all(dispatch, run, message, sends):
    for node, payload, path, delay in sends:
        broker.enqueue(dispatch, run, node, payload, path, run.environment, delay)


def _wrap(options):
    if not options.command:
        raise CommandError("give the program to run after --", EXIT_USAGE)
    database = open_database(options.zeo)
    try:
        with dispatch_state(database, write=True) as dispatch:
            run = dispatch.runs.get(options.run)
            if run is None:
                raise CommandError(f"no run {options.run!r}", EXIT_FAILED)
            if options.step not in run.steps:
                raise CommandError(
                    f"run {options.run} has no step {options.step}", EXIT_USAGE
                )
            message = admin.adopt_delivery(
                dispatch, run, options.step, {"command": options.command}, "wrap"
            )
            message_id = message.id
            sends = []
            _wrapper(dispatch, run, message, sends).send_to(
                "starting", "Starting processing"
            )
            _send_all(dispatch, run, message, sends)
        output = bytearray()
        try:
            process = subprocess.Popen(
                options.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
        except OSError as error:
            exit_code, output = 127, bytearray(f"cannot start: {error}".encode())
        else:
            for chunk in iter(lambda: process.stdout.read1(65536), b""):
                output.extend(chunk)
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
            exit_code = process.wait()
        tail = output_tail(bytes(output))
        with dispatch_state(database, write=True) as dispatch:
            run = dispatch.runs[options.run]
            message = run.messages[message_id]
            sends = []
            wrapper = _wrapper(dispatch, run, message, sends)
            result = {"exit_code": exit_code, "output_tail": tail}
            wrapper.send_to("success" if exit_code == 0 else "failure", result)
            wrapper.send_to("completed", "Finished processing")
            _send_all(dispatch, run, message, sends)
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


def wrap_main(argv):
    """``dispatch wrap --run ID --step N -- PROGRAM ARGS...``."""
    parser = argparse.ArgumentParser(
        prog="dispatch wrap",
        description="Run a program as a step of a run, reporting into the recipe.",
    )
    parser.add_argument("--run", required=True, metavar="ID")
    parser.add_argument("--step", required=True, type=int, metavar="N")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- PROGRAM")
    add_zeo_option(parser)
    if "--" in argv:
        split = argv.index("--")
        argv = argv[:split] + argv[split + 1 :]
    return run_command("wrap", parser, _wrap, argv)
