"""``dispatch drain SOURCE DESTINATION``: move the pending messages of one
queue to another (``.``: each back to its own step's queue), as
``zocalo.queue_drain``."""

from __future__ import annotations

import argparse

from dispatch.cli import base
from dispatch.state import admin


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE")
    parser.add_argument(
        "destination", metavar="DESTINATION", help="a queue, or . for each step's own"
    )
    base.add_zeo_option(parser)


def run(options: argparse.Namespace) -> int:
    with base.dispatch_at(options.zeo, write=True) as dispatch:
        moved = admin.drain(dispatch, options.source, options.destination)
        lines = [
            f"message {m.id} (run {m.run_id}, step {m.node}) -> {m.queue}"
            for m in moved
        ]
    for line in lines:
        print(line)
    print(f"{len(lines)} message(s) moved from {options.source}")
    return base.EXIT_OK


COMMAND = base.Command(
    __name__,
    summary="move pending messages to another queue",
    description="Move pending messages from one queue to another.",
    add_arguments=add_arguments,
    run=run,
)
