"""``dispatch cancel RUN``: withdraw a run's pending messages at once;
messages being handled finish, and what they send is withdrawn when it
reaches its queue."""

from __future__ import annotations

import argparse

from dispatch.cli.base import (
    EXIT_FAILED,
    EXIT_OK,
    Command,
    CommandError,
    add_zeo_option,
    open_database,
)
from dispatch.state import admin, views
from dispatch.state.database import dispatch_state


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN")
    add_zeo_option(parser)


def run(options: argparse.Namespace) -> int:
    database = open_database(options.zeo)
    try:
        with dispatch_state(database, write=True) as dispatch:
            run = views.find_run(dispatch, options.run)
            if run.cancelled is not None:
                print(f"run {run.id} was cancelled already")
                return EXIT_OK
            withdrawn = admin.cancel_run(dispatch, run)
    except views.RunNotFound as error:
        raise CommandError(str(error), EXIT_FAILED) from None
    finally:
        database.close()
    print(f"run {options.run} cancelled; {withdrawn} pending message(s) withdrawn")
    return EXIT_OK


COMMAND = Command(
    __name__,
    summary="cancel a run",
    description="Cancel a run.",
    add_arguments=add_arguments,
    run=run,
)
