"""``dispatch dlq-purge [QUEUE...] [--location DIR] [--wait SECONDS]``: move
dead letters to JSON files in zocalo's layout (see
:mod:`dispatch.state.deadletters`).  With ``--wait`` it goes on purging
dead letters as they arrive until SECONDS pass without one (zocalo's
``dlq_purge --wait``): it sleeps on zeo's ``watch()`` of the dead-letter
count, so a new dead letter wakes it at once and nothing polls."""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ZODB.POSException import ConflictError

from dispatch.cli import base
from dispatch.state import deadletters
from dispatch.state.database import dispatch_state

PURGE_LOCATION_VARIABLE = "DISPATCH_DLQ_LOCATION"
# Where zocalo.dlq_purge looks in its configuration's storage.
STORAGE_LOCATION_KEY = "zocalo.dlq.purge_location"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("queues", nargs="*", metavar="QUEUE")
    parser.add_argument(
        "--location",
        help=(
            f"directory for the files (default ${PURGE_LOCATION_VARIABLE}, else "
            f"storage {STORAGE_LOCATION_KEY} of -C/-e, else ./DLQ)"
        ),
    )
    base.add_wait_option(
        parser, "go on purging new dead letters until SECONDS pass without one"
    )
    base.add_zeo_option(parser)
    base.add_site_options(parser)


def _purge(database: Any, options: argparse.Namespace) -> list[Path] | None:
    """One purge in a transaction of its own; None on a conflict (the files
    it wrote are written again by the next try: duplicates, no loss)."""
    try:
        with dispatch_state(database, write=True) as dispatch:
            return deadletters.purge(dispatch, options.location, set(options.queues))
    except ConflictError:
        return None


def _watch_dead_letters(database: Any, changed: threading.Event) -> Any:
    """Set *changed* whenever a commit changes the dead-letter count (every
    new, purged or re-sent dead letter), or every commit if it is not
    stored yet (a database no run has used)."""
    with dispatch_state(database) as dispatch:
        oid = dispatch.dead_count._p_oid
    oids = None if oid is None else [oid]
    return database.storage.watch(lambda tid, changes: changed.set(), oids=oids)


def run(options: argparse.Namespace) -> int:
    site = base.site_of(options)
    options.location = (
        options.location
        or os.environ.get(PURGE_LOCATION_VARIABLE)
        or str(site.storage.get(STORAGE_LOCATION_KEY) or "DLQ")
    )
    if not options.wait:
        with base.dispatch_at(options.zeo, write=True) as dispatch:
            written = deadletters.purge(dispatch, options.location, set(options.queues))
        for path in written:
            print(path)
        return base.EXIT_OK
    database = base.open_database(options.zeo)
    changed = threading.Event()
    try:
        handle = _watch_dead_letters(database, changed)
        try:
            quiet_until = time.monotonic() + options.wait
            announced = False
            while True:
                changed.clear()
                purged = _purge(database, options)
                if purged is None:
                    continue  # lost a race with a writer: at once again
                for path in purged:
                    print(path, flush=True)
                if purged:
                    quiet_until = time.monotonic() + options.wait
                elif not announced:
                    print(
                        f"waiting up to {options.wait:g}s for dead letters",
                        file=sys.stderr,
                        flush=True,
                    )
                    announced = True
                remaining = quiet_until - time.monotonic()
                if remaining <= 0:
                    break
                changed.wait(remaining)
        finally:
            handle.close()
    finally:
        database.close()
    return base.EXIT_OK


COMMAND = base.Command(
    __name__,
    summary="move dead letters to JSON files",
    description="Move dead letters to JSON files.",
    add_arguments=add_arguments,
    run=run,
)
