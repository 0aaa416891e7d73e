"""``dispatch dlq-purge [QUEUE...] [--location DIR]``: move dead letters to
JSON files in zocalo's layout (see :mod:`dispatch.state.deadletters`)."""

from __future__ import annotations

import argparse
import os

from dispatch.cli import base
from dispatch.state import deadletters

PURGE_LOCATION_VARIABLE = "DISPATCH_DLQ_LOCATION"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("queues", nargs="*", metavar="QUEUE")
    parser.add_argument(
        "--location",
        default=os.environ.get(PURGE_LOCATION_VARIABLE, "DLQ"),
        help=f"directory for the files (default ${PURGE_LOCATION_VARIABLE} or ./DLQ)",
    )
    base.add_zeo_option(parser)


def run(options: argparse.Namespace) -> int:
    with base.dispatch_at(options.zeo, write=True) as dispatch:
        written = deadletters.purge(dispatch, options.location, set(options.queues))
    for path in written:
        print(path)
    return base.EXIT_OK


COMMAND = base.Command(
    __name__,
    summary="move dead letters to JSON files",
    description="Move dead letters to JSON files.",
    add_arguments=add_arguments,
    run=run,
)
