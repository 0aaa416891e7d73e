"""``dispatch shutdown NAME...|--all``: ask running services to stop after
their current message (each watches its instance record).  Exit status 1
when nothing matched."""

from __future__ import annotations

import argparse

from dispatch.cli import base
from dispatch.state import admin


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="service class, instance id or host.pid",
    )
    parser.add_argument("--all", action="store_true", help="every running instance")
    base.add_zeo_option(parser)


def run(options: argparse.Namespace) -> int:
    if not options.all and not options.names:
        raise base.CommandError(
            "name the services to stop, or give --all", base.EXIT_USAGE
        )
    with base.dispatch_at(options.zeo, write=True) as dispatch:
        asked = []
        for name in options.names or [None]:
            asked.extend(admin.request_shutdown(dispatch, name))
        lines = [
            f"asked {i.service} (instance {i.id}, pid {i.pid} on {i.host}) to stop"
            for i in asked
        ]
    for line in lines:
        print(line)
    if not lines:
        print("no running service instance matched")
        return base.EXIT_FAILED
    return base.EXIT_OK


COMMAND = base.Command(
    __name__,
    summary="ask running services to stop",
    description="Ask running services to stop after their current message.",
    add_arguments=add_arguments,
    run=run,
)
