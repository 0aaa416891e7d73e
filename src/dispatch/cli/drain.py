"""``dispatch drain SOURCE DESTINATION [--wait SECONDS]``: move the pending
messages of one queue to another (``.``: each back to its own step's
queue), as ``zocalo.queue_drain``; with ``--wait`` one at a time, pausing
between them, so the destination's consumers are not flooded."""

from __future__ import annotations

import argparse
import time

from dispatch.cli import base
from dispatch.state import admin


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE")
    parser.add_argument(
        "destination", metavar="DESTINATION", help="a queue, or . for each step's own"
    )
    base.add_wait_option(
        parser, "move one message at a time, this long apart (default 0: all at once)"
    )
    base.add_zeo_option(parser)
    base.add_site_options(parser)


def _move(options: argparse.Namespace, limit: int | None) -> list[str]:
    with base.dispatch_at(options.zeo, write=True) as dispatch:
        moved = admin.drain(dispatch, options.source, options.destination, limit=limit)
        return [
            f"message {m.id} (run {m.run_id}, step {m.node}) -> {m.queue}"
            for m in moved
        ]


def run(options: argparse.Namespace) -> int:
    base.site_of(options)
    count = 0
    limit = 1 if options.wait else None
    while True:
        lines = _move(options, limit)
        for line in lines:
            print(line, flush=True)
        count += len(lines)
        if limit is None or not lines:
            break
        time.sleep(options.wait)  # pacing, as zocalo.queue_drain --wait
    print(f"{count} message(s) moved from {options.source}")
    return base.EXIT_OK


COMMAND = base.Command(
    __name__,
    summary="move pending messages to another queue",
    description="Move pending messages from one queue to another.",
    add_arguments=add_arguments,
    run=run,
)
