"""``dispatch service NAME [--queue QUEUE]``: run a service (entry point
group ``dispatch.services``, or ``module:Class``) until SIGTERM, SIGINT or
``dispatch shutdown``; see :mod:`dispatch.runtime.instance`."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from types import FrameType

from dispatch.cli import base
from dispatch.runtime import configuration
from dispatch.runtime.instance import HEARTBEAT_INTERVAL, Instance
from dispatch.runtime.service import load_service


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="service name or module:Class")
    parser.add_argument("--queue", help="consume this queue instead of the class's")
    parser.add_argument("--consumer-name", help="name recorded in attempts")
    parser.add_argument(
        "--prefetch", type=int, help="messages claimed and committed together"
    )
    parser.add_argument(
        "--liveness",
        metavar="FILE",
        help="touch FILE each time round the service loop (for a liveness probe)",
    )
    parser.add_argument(
        "--liveness-interval",
        type=base.seconds,
        default=10.0,
        metavar="SECONDS",
        help="with --liveness: touch it at least this often when idle (default 10)",
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=base.seconds,
        default=HEARTBEAT_INTERVAL,
        metavar="SECONDS",
        help=f"record a heartbeat this often (default {HEARTBEAT_INTERVAL:g})",
    )
    base.add_zeo_option(parser)
    configuration.add_options(parser, required=False)


def run(options: argparse.Namespace) -> int:
    service_class = load_service(options.name)
    site = configuration.load_site(options.configure, options.environments)
    site.apply_logging()
    if options.liveness:
        try:
            Path(options.liveness).touch()
        except OSError as error:
            raise base.CommandError(
                f"--liveness: cannot touch {options.liveness}: {error}", base.EXIT_USAGE
            ) from None
    database = base.open_database(options.zeo or site.dispatch.get("zeo"))
    stopped_by_signal = False
    try:
        instance = Instance(
            service_class,
            database,
            options.queue,
            options.consumer_name,
            options.prefetch,
            site,
        )
        instance.heartbeat_interval = options.heartbeat_interval or HEARTBEAT_INTERVAL
        if options.liveness:
            liveness = Path(options.liveness)
            instance.consumer.liveness = liveness.touch
            instance.consumer.liveness_interval = options.liveness_interval or 10.0

        def request_stop(signal_number: int, frame: FrameType | None) -> None:
            nonlocal stopped_by_signal
            stopped_by_signal = True
            instance.stop(f"signal {signal_number}")

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)

        def ready(instance: Instance) -> None:
            print(
                f"service {options.name} ready on queue {instance.queue} "
                f"(instance {instance.instance_id})",
                flush=True,
            )

        instance.serve(ready)
    finally:
        database.close()
    if instance.crash is not None and not stopped_by_signal:
        raise base.CommandError(
            f"service crashed: {instance.crash!r}", base.EXIT_FAILED
        )
    return base.EXIT_OK


COMMAND = base.Command(
    __name__,
    summary="run a service (entry point group dispatch.services)",
    description="Run a service (entry point group dispatch.services).",
    add_arguments=add_arguments,
    run=run,
)
