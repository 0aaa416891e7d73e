"""The ``zeo`` transport's command-line options, for argparse and optparse
parsers alike (``zocalo.service`` uses optparse, other workflows programs
argparse): ``--zeo HOST:PORT`` and ``--zeo-poll SECONDS``, stored into the
transport class's ``config`` as workflows' other transports do."""

from __future__ import annotations

import argparse
from typing import Any

from dispatch.state.database import ADDRESS_VARIABLE


def add_options(parser: Any, config: dict[str, Any], default_poll: float) -> None:
    zeo_help = (
        f"dispatch's zeo server, HOST:PORT or a socket path "
        f"(default ${ADDRESS_VARIABLE})"
    )
    poll_help = f"seconds between looks at idle queues (default {default_poll})"
    if hasattr(parser, "add_argument"):

        class Store(argparse.Action):
            def __call__(self, parser, namespace, value, option_string=None):  # type: ignore[no-untyped-def]
                config[option_string] = value

        parser.add_argument("--zeo", metavar="ADDRESS", help=zeo_help, action=Store)
        parser.add_argument(
            "--zeo-poll", metavar="SECONDS", type=float, help=poll_help, action=Store
        )
        return

    def store(option, opt, value, parser):  # type: ignore[no-untyped-def]
        config[opt] = value

    parser.add_option(
        "--zeo", metavar="ADDRESS", type="string", help=zeo_help,
        action="callback", callback=store,
    )  # fmt: skip
    parser.add_option(
        "--zeo-poll", metavar="SECONDS", type="float", help=poll_help,
        action="callback", callback=store,
    )  # fmt: skip
