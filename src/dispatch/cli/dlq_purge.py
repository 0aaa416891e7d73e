"""``dispatch dlq-purge [QUEUE...] [--location DIR]``: move dead letters to
JSON files in zocalo's layout (see :mod:`dispatch.state.deadletters`)."""

from __future__ import annotations

import argparse
import os

from dispatch.cli.base import EXIT_OK, Command, add_zeo_option, open_database
from dispatch.state import deadletters
from dispatch.state.database import dispatch_state

PURGE_LOCATION_VARIABLE = "DISPATCH_DLQ_LOCATION"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("queues", nargs="*", metavar="QUEUE")
    parser.add_argument(
        "--location",
        default=os.environ.get(PURGE_LOCATION_VARIABLE, "DLQ"),
        help=f"directory for the files (default ${PURGE_LOCATION_VARIABLE} or ./DLQ)",
    )
    add_zeo_option(parser)


def run(options: argparse.Namespace) -> int:
    database = open_database(options.zeo)
    try:
        with dispatch_state(database, write=True) as dispatch:
            written = deadletters.purge(dispatch, options.location, set(options.queues))
    finally:
        database.close()
    for path in written:
        print(path)
    return EXIT_OK


COMMAND = Command(
    __name__,
    summary="move dead letters to JSON files",
    description="Move dead letters to JSON files.",
    add_arguments=add_arguments,
    run=run,
)
