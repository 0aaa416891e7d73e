"""``dispatch supervise -C FILE``: keep the services of a configuration
running through papa (see :mod:`dispatch.runtime.supervisor`) until SIGTERM
or SIGINT, which stop every instance after its current message."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType

import transaction

from dispatch.cli import base
from dispatch.runtime.configuration import (
    add_options,
    database_target,
    load_configuration,
)
from dispatch.runtime.kernel import kernel_answers
from dispatch.runtime.supervisor import Supervisor

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, required=True)
    base.add_zeo_option(parser)


def run(options: argparse.Namespace) -> int:
    config = load_configuration(options.configure, options.environments)
    if config.eventlog is not None:
        config.eventlog()
    else:
        logging.getLogger().setLevel(logging.INFO)
    zeo = database_target(config, options.configure, options.zeo)
    database = base.open_database(zeo)
    try:
        supervisor = Supervisor(config, zeo, database)
        if not kernel_answers(supervisor.papa):
            raise base.CommandError(
                f"no papa kernel answers at {supervisor.papa_text} (start one: "
                "papa -C conf/papa.conf)",
                base.EXIT_UNREACHABLE,
            )
        done = threading.Event()

        def request_stop(signal_number: int, frame: FrameType | None) -> None:
            logger.info("signal %d: stopping the services", signal_number)
            done.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        supervisor.start()
        print(
            f"supervising {len(supervisor.slots)} instance(s): "
            + ", ".join(slot.label for slot in supervisor.slots),
            flush=True,
        )
        done.wait()
        supervisor.stop()
    finally:
        transaction.abort()
        database.close()
    print("supervise: every instance stopped", flush=True)
    return base.EXIT_OK


COMMAND = base.Command(
    __name__,
    summary="keep the services of a configuration running through papa",
    description="Keep the configured services running through papa.",
    add_arguments=add_arguments,
    run=run,
)
