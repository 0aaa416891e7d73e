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

from dispatch.state import model
from dispatch.state.broker import get_dispatch

logger = logging.getLogger(__name__)

# The zeo server holding dispatch state, as commands and service instances
# read it (HOST:PORT or a socket path).
ADDRESS_VARIABLE = "DISPATCH_ZEO"


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
