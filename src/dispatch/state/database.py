"""Dispatch state on a connection of its own, for one transaction.

Commands, the service loop and the supervisor each read or change the state
in short transactions of their own; this is the one way they open one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import transaction
from ZODB.POSException import ConflictError

from dispatch.state import model, runindex
from dispatch.state.broker import get_dispatch

logger = logging.getLogger(__name__)

# The zeo server holding dispatch state, as commands and service instances
# read it (HOST:PORT or a socket path).
ADDRESS_VARIABLE = "DISPATCH_ZEO"


def sync_with_server(database: Any) -> None:
    """Make the next transaction begun on *database* see every commit the
    server finished before now (a round trip to zeo brings the
    invalidations sent before it), such as the last commit of a process
    that just died."""
    storage = database.storage
    if hasattr(storage, "ping"):
        storage.ping()


@contextmanager
def dispatch_state(database: Any, write: bool = False) -> Iterator[model.Dispatch]:
    """``Dispatch`` on a fresh connection; committed if *write*, else aborted."""
    manager = transaction.TransactionManager()
    connection = database.open(manager)
    try:
        manager.begin()
        yield get_dispatch(connection.root())
        if write:
            manager.commit()
        else:
            manager.abort()
    except BaseException:
        manager.abort()
        raise
    finally:
        connection.close()


# A build conflicts with any commit made while it scans: it is tried again.
BUILD_ATTEMPTS = 5


def ensure_run_index(database: Any) -> bool:
    """Build the run index of a database made before it (see
    :mod:`dispatch.state.runindex`) in a transaction of its own, once;
    returns True when it built one.  Called when a command, service or
    console that relies on it opens the database."""
    for attempt in range(1, BUILD_ATTEMPTS + 1):
        try:
            with dispatch_state(database, write=True) as dispatch:
                if runindex.index_of(dispatch) is not None:
                    return False
                runindex.build(dispatch, model.RUN_STATES)
                return True
        except ConflictError:
            logger.info("building the run index conflicted (attempt %d)", attempt)
    raise ConflictError(
        f"the run index could not be built in {BUILD_ATTEMPTS} attempts: "
        "the state kept changing; try again when fewer runs are finishing"
    )
