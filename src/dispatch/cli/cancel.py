"""``dispatch cancel RUN``: withdraw a run's pending messages at once;
messages being handled finish, and what they send is withdrawn when it
reaches its queue."""

from __future__ import annotations

import argparse

from dispatch.cli import base
from dispatch.state import admin, views


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN")
    base.add_zeo_option(parser)


def run(options: argparse.Namespace) -> int:
    with base.dispatch_at(options.zeo, write=True) as dispatch:
        run = views.find_run(dispatch, options.run)
        if run.cancelled is not None:
            print(f"run {run.id} was cancelled already")
            return base.EXIT_OK
        withdrawn = admin.cancel_run(dispatch, run)
    print(f"run {options.run} cancelled; {withdrawn} pending message(s) withdrawn")
    return base.EXIT_OK


COMMAND = base.Command(
    __name__,
    summary="cancel a run",
    description="Cancel a run.",
    add_arguments=add_arguments,
    run=run,
)
