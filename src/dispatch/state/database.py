"""Dispatch state on a connection of its own, for one transaction.

Commands, the service loop and the supervisor each read or change the state
in short transactions of their own; this is the one way they open one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

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


Result = TypeVar("Result")

# Tries of a write that keeps conflicting with other clients' commits.
WRITE_ATTEMPTS = 10
# A build conflicts with any commit made while it scans: it is tried again.
BUILD_ATTEMPTS = 5


def write_retried(
    database: Any,
    function: Callable[[model.Dispatch], Result],
    attempts: int = WRITE_ATTEMPTS,
) -> Result:
    """``function(dispatch)`` in a transaction committed at the end, run
    again from the start on a fresh snapshot when the commit conflicts with
    another client's (consumers ending runs touch the run index that a new
    run is added to); the last ``ConflictError`` after *attempts* tries.
    *function* must only change state: it may run more than once."""
    for attempt in range(1, attempts + 1):
        try:
            with dispatch_state(database, write=True) as dispatch:
                return function(dispatch)
        except ConflictError:
            if attempt == attempts:
                raise
            logger.info("write conflicted (attempt %d); again", attempt)
    raise AssertionError("unreachable")


def ensure_run_index(database: Any) -> bool:
    """Build the run index of a database made before it (see
    :mod:`dispatch.state.runindex`) in a transaction of its own, once;
    returns True when it built one.  Called when a command, service or
    console that relies on it opens the database."""

    def build(dispatch: model.Dispatch) -> bool:
        if runindex.index_of(dispatch) is not None:
            return False
        runindex.build(dispatch, model.RUN_STATES)
        return True

    try:
        return write_retried(database, build, BUILD_ATTEMPTS)
    except ConflictError:
        raise ConflictError(
            f"the run index could not be built in {BUILD_ATTEMPTS} attempts: "
            "the state kept changing; try again when fewer runs are finishing"
        ) from None
