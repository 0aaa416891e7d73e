"""``dispatch retry RUN [STEP]``: send a run's dead letters (or one step's)
again as new messages; the run counts them as open again, so it can still
succeed.  Exit status 1 when there is nothing to retry."""

from __future__ import annotations

import argparse

from dispatch.cli import base
from dispatch.state import admin, views


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN")
    parser.add_argument("step", metavar="STEP", type=int, nargs="?")
    base.add_zeo_option(parser)


def run(options: argparse.Namespace) -> int:
    try:
        with base.dispatch_at(options.zeo, write=True) as dispatch:
            run = views.find_run(dispatch, options.run)
            revived = admin.retry_dead(dispatch, run, options.step)
            ids = [message.id for message in revived]
    except ValueError as error:  # the run was cancelled
        raise base.CommandError(str(error), base.EXIT_FAILED) from None
    if not ids:
        where = f" in step {options.step}" if options.step is not None else ""
        print(f"run {options.run} has no dead letters{where} to retry")
        return base.EXIT_FAILED
    for message_id in ids:
        print(f"sent again as message {message_id}")
    return base.EXIT_OK


COMMAND = base.Command(
    __name__,
    summary="send a run's dead letters again",
    description="Send a run's dead letters again.",
    add_arguments=add_arguments,
    run=run,
)
