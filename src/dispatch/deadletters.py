"""Old home of dead letters: their operations are now in
:mod:`dispatch.state.deadletters`, the commands in
:mod:`dispatch.cli.dlq_check`, ``dlq_purge`` and ``dlq_reinject``.  The old
names are still importable from here, ``purge`` and ``reinject`` with their
old signatures (a database, each in a transaction of its own)."""

from typing import Any

from dispatch.cli import dlq_check, dlq_purge, dlq_reinject
from dispatch.cli.dlq_purge import PURGE_LOCATION_VARIABLE
from dispatch.state import deadletters as _operations
from dispatch.state.database import dispatch_state
from dispatch.state.deadletters import (
    DeadLetterError,
    dead_letter_counts,
    export_document,
)

__all__ = [
    "PURGE_LOCATION_VARIABLE",
    "DeadLetterError",
    "check_main",
    "dead_letter_counts",
    "export_document",
    "purge",
    "purge_main",
    "reinject",
    "reinject_main",
]


def purge(database: Any, location: str, queues: Any = None, now: Any = None) -> Any:
    """Move dead letters to files in *location* (one transaction)."""
    with dispatch_state(database, write=True) as dispatch:
        return _operations.purge(dispatch, location, queues, now)


def reinject(
    database: Any, document: dict[str, Any], destination: Any = None, now: Any = None
) -> str:
    """Send a purged dead letter back (one transaction); its new message id."""
    with dispatch_state(database, write=True) as dispatch:
        return _operations.reinject(dispatch, document, destination, now)


# Entry functions of the old layout: each is its command's ``main``.
check_main = dlq_check.COMMAND.main
purge_main = dlq_purge.COMMAND.main
reinject_main = dlq_reinject.COMMAND.main
