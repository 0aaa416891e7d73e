"""The one conflict-retry loop of the runtime's commits.

Consumers and the command runner share their database with other
processes, so any commit may meet a ConflictError; what to do then is the
same everywhere: abort, note it, apply the same work again in a new
transaction, a bounded number of times.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ZODB.POSException import ConflictError

# How many tries a commit gets by default before it is given up.
CONFLICT_RETRIES = 20
# What commit_retrying made of a transaction.
COMMITTED = "committed"
DECLINED = "declined"  # the work found nothing to commit; aborted
CONFLICTED = "conflicted"  # every try conflicted; aborted


def _nothing() -> None:
    pass


def commit_retrying(
    manager: Any,
    work: Callable[[int], bool],
    on_conflict: Callable[[], None] = _nothing,
    tries: int = CONFLICT_RETRIES,
) -> str:
    """Commit *manager*'s transaction with what ``work(retry)`` adds to it.

    On a ConflictError the transaction is aborted, ``on_conflict()``
    called, and ``work`` applied again (with the number of the try) in a
    new one, up to *tries* times.  *work* returns False when there is
    nothing to commit after all.  Returns :data:`COMMITTED`,
    :data:`DECLINED` or :data:`CONFLICTED`; all but the first leave the
    transaction aborted.
    """
    for retry in range(tries):
        try:
            if not work(retry):
                manager.abort()
                return DECLINED
            manager.commit()
            return COMMITTED
        except ConflictError:
            manager.abort()
            on_conflict()
            manager.begin()
    manager.abort()
    return CONFLICTED
