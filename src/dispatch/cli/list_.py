"""``dispatch list``: every run with its status."""

from __future__ import annotations

import argparse

from dispatch.cli.base import EXIT_OK, Command, add_zeo_option, open_database, when
from dispatch.state import model, views
from dispatch.state.database import dispatch_state


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_zeo_option(parser)


def run(options: argparse.Namespace) -> int:
    database = open_database(options.zeo)
    try:
        with dispatch_state(database) as dispatch:
            rows = []
            for run in dispatch.runs.values():
                states = views.step_states(dispatch, run.id)
                done = sum(state == model.DONE for state in states.values())
                rows.append(
                    (run.id, run.status, when(run.created), f"{done}/{len(states)}")
                )
    finally:
        database.close()
    print(f"{'RUN':<24}  {'STATUS':<9}  {'CREATED':<19}  STEPS DONE")
    for row in rows:
        print(f"{row[0]:<24}  {row[1]:<9}  {row[2]:<19}  {row[3]}")
    return EXIT_OK


COMMAND = Command(
    __name__,
    summary="list runs and their status",
    description="List runs.",
    add_arguments=add_arguments,
    run=run,
)
