"""``dispatch dlq-reinject FILE... [-r] [-d QUEUE] [-w SECONDS]``: send dead
letters that ``dlq-purge`` wrote back to their step, each as a new message
of its run (file names on standard input when none is given), ``-w``
seconds apart (zocalo.dlq_reinject's ``-w``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from dispatch.cli import base
from dispatch.state import deadletters
from dispatch.state.database import dispatch_state


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", metavar="FILE")
    parser.add_argument(
        "-r", "--remove", action="store_true", help="delete each file once sent"
    )
    parser.add_argument("-d", "--destination", help="send to this queue instead")
    base.add_wait_option(parser, "pause this long between messages (default 0)")
    base.add_zeo_option(parser)
    base.add_site_options(parser)


def run(options: argparse.Namespace) -> int:
    base.site_of(options)
    files = list(options.files)
    if not files and not sys.stdin.isatty():
        files = [line.strip() for line in sys.stdin if line.strip()]
    if not files:
        raise base.CommandError("name the files written by dlq-purge", base.EXIT_USAGE)
    database = base.open_database(options.zeo)
    failures = 0
    try:
        for number, name in enumerate(files):
            if number and options.wait:
                time.sleep(options.wait)  # pacing, as zocalo.dlq_reinject -w
            try:
                with open(name, encoding="utf-8") as stream:
                    document = json.load(stream)
                with dispatch_state(database, write=True) as dispatch:
                    message_id = deadletters.reinject(
                        dispatch, document, options.destination
                    )
            except (OSError, ValueError) as error:
                failures += 1
                print(f"{name}: not re-injected: {error}", file=sys.stderr)
                continue
            print(f"{name}: re-injected as message {message_id}")
            if options.remove:
                os.remove(name)
    finally:
        database.close()
    return base.EXIT_FAILED if failures else base.EXIT_OK


COMMAND = base.Command(
    __name__,
    summary="send purged dead letters back",
    description="Send purged dead letters back (files, or names on stdin).",
    add_arguments=add_arguments,
    run=run,
)
