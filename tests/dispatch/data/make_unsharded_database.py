"""Make ``unsharded.fs``: a database written by dispatch as it was before
queues, runs and steps were split into per-writer shards (commit 26e06b5).

Kept for the record; it only works with that code on ``sys.path``
(``git worktree add /tmp/old 26e06b5``, then
``PYTHONPATH=/tmp/old/src python make_unsharded_database.py``).
``test_unsharded_database.py`` opens a copy with today's code.

What is in it:

- run ``old-chain`` (steps 1 -> 2 on queue ``legacy``, three start
  messages): ``n=0`` done (its step-2 message pending), ``n=1`` claimed
  with a one-second lease (lapsed by the time a test opens it), ``n=2``
  pending;
- run ``old-poison`` (queue ``poison``): its message a dead letter after
  one delivery.
"""

import sys
from pathlib import Path

import transaction
import ZODB
from ZODB.FileStorage import FileStorage

from dispatch import broker

CHAIN = {
    "1": {"queue": "legacy", "output": 2},
    "2": {"queue": "legacy"},
    "start": [[1, {"n": n}] for n in range(3)],
}
POISON = {"1": {"queue": "poison"}, "start": [[1, "poison"]]}


def main(path):
    database = ZODB.DB(FileStorage(str(path)))
    connection = database.open()
    root = connection.root()
    dispatch = broker.get_dispatch(root)
    run = broker.start_run(dispatch, CHAIN, {"guid": "old-chain"})
    broker.start_run(dispatch, POISON, {"guid": "old-poison"})
    transaction.commit()
    first = broker.claim(dispatch, "legacy", "maker", lease=60.0)
    broker.complete(dispatch, first, [(2, {"from": 0}, [1], 0.0)])
    transaction.commit()
    broker.claim(dispatch, "legacy", "maker", lease=1.0)
    transaction.commit()
    poison = broker.claim(dispatch, "poison", "maker")
    broker.release(dispatch, poison, "RuntimeError: poison", max_deliveries=1)
    transaction.commit()
    assert run.open_count() == 3
    connection.close()
    database.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "unsharded.fs"))
