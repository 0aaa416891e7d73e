"""``dispatch cancel RUN``, ``dispatch retry RUN [STEP]`` and
``dispatch drain SOURCE DESTINATION``.

Cancel withdraws a run's pending messages at once; messages being handled
finish, and what they send is withdrawn when it reaches its queue.  Retry sends a run's dead letters (or one
step's) again as new messages; the run counts them as open again, so it can
still succeed.  Drain moves the pending messages of one queue to another
(``.``: each back to its own step's queue), as ``zocalo.queue_drain``.
"""

import argparse
import logging

from dispatch import admin
from dispatch.commands import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    add_zeo_option,
    dispatch_state,
    open_database,
    run_command,
)

logger = logging.getLogger(__name__)


def _find_run(dispatch, run_id):
    run = dispatch.runs.get(run_id)
    if run is None:
        raise CommandError(f"no run {run_id!r} (see `dispatch list`)", EXIT_FAILED)
    return run


def _cancel(options):
    database = open_database(options.zeo)
    try:
        with dispatch_state(database, write=True) as dispatch:
            run = _find_run(dispatch, options.run)
            if run.cancelled is not None:
                print(f"run {run.id} was cancelled already")
                return EXIT_OK
            withdrawn = admin.cancel_run(dispatch, run)
    finally:
        database.close()
    print(f"run {options.run} cancelled; {withdrawn} pending message(s) withdrawn")
    return EXIT_OK


def _retry(options):
    database = open_database(options.zeo)
    try:
        with dispatch_state(database, write=True) as dispatch:
            run = _find_run(dispatch, options.run)
            try:
                revived = admin.retry_dead(dispatch, run, options.step)
            except ValueError as error:
                raise CommandError(str(error), EXIT_FAILED) from None
            ids = [message.id for message in revived]
    finally:
        database.close()
    if not ids:
        where = f" in step {options.step}" if options.step is not None else ""
        print(f"run {options.run} has no dead letters{where} to retry")
        return EXIT_FAILED
    for message_id in ids:
        print(f"sent again as message {message_id}")
    return EXIT_OK


def cancel_main(argv):
    """``dispatch cancel RUN``."""
    parser = argparse.ArgumentParser(
        prog="dispatch cancel", description="Cancel a run."
    )
    parser.add_argument("run", metavar="RUN")
    add_zeo_option(parser)
    return run_command("cancel", parser, _cancel, argv)


def retry_main(argv):
    """``dispatch retry RUN [STEP]``: exit 1 when there is nothing to retry."""
    parser = argparse.ArgumentParser(
        prog="dispatch retry", description="Send a run's dead letters again."
    )
    parser.add_argument("run", metavar="RUN")
    parser.add_argument("step", metavar="STEP", type=int, nargs="?")
    add_zeo_option(parser)
    return run_command("retry", parser, _retry, argv)


def _drain(options):
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


def drain_main(argv):
    """``dispatch drain SOURCE DESTINATION`` (``.``: each to its step's queue)."""
    parser = argparse.ArgumentParser(
        prog="dispatch drain",
        description="Move pending messages from one queue to another.",
    )
    parser.add_argument("source", metavar="SOURCE")
    parser.add_argument(
        "destination", metavar="DESTINATION", help="a queue, or . for each step's own"
    )
    add_zeo_option(parser)
    return run_command("drain", parser, _drain, argv)


def _shutdown(options):
    if not options.all and not options.names:
        raise CommandError("name the services to stop, or give --all", EXIT_USAGE)
    database = open_database(options.zeo)
    try:
        with dispatch_state(database, write=True) as dispatch:
            asked = []
            for name in options.names or [None]:
                asked.extend(admin.request_shutdown(dispatch, name))
            lines = [
                f"asked {i.service} (instance {i.id}, pid {i.pid} on {i.host}) to stop"
                for i in asked
            ]
    finally:
        database.close()
    for line in lines:
        print(line)
    if not lines:
        print("no running service instance matched")
        return EXIT_FAILED
    return EXIT_OK


def shutdown_main(argv):
    """``dispatch shutdown NAME...|--all``: exit 1 when nothing matched."""
    parser = argparse.ArgumentParser(
        prog="dispatch shutdown",
        description="Ask running services to stop after their current message.",
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="service class, instance id or host.pid",
    )
    parser.add_argument("--all", action="store_true", help="every running instance")
    add_zeo_option(parser)
    return run_command("shutdown", parser, _shutdown, argv)
