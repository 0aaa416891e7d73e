"""``dispatch drain SOURCE DESTINATION``: move the pending messages of one
queue to another (``.``: each back to its own step's queue), as
``zocalo.queue_drain``."""

from __future__ import annotations

import argparse

from dispatch.cli.base import EXIT_OK, Command, add_zeo_option, open_database
from dispatch.state import admin
from dispatch.state.database import dispatch_state


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE")
    parser.add_argument(
        "destination", metavar="DESTINATION", help="a queue, or . for each step's own"
    )
    add_zeo_option(parser)


def run(options: argparse.Namespace) -> int:
    database = open_database(options.zeo)
    try:
        with dispatch_state(database, write=True) as dispatch:
            moved = admin.drain(dispatch, options.source, options.destination)
            lines = [
                f"message {m.id} (run {m.run_id}, step {m.node}) -> {m.queue}"
                for m in moved
            ]
    finally:
        database.close()
    for line in lines:
        print(line)
    print(f"{len(lines)} message(s) moved from {options.source}")
    return EXIT_OK


COMMAND = Command(
    __name__,
    summary="move pending messages to another queue",
    description="Move pending messages from one queue to another.",
    add_arguments=add_arguments,
    run=run,
)
