"""Make ``unindexed.fs``: a database written by dispatch as it was before
the run index (commit 48f971e of main).

Kept for the record; it only works with that code on ``sys.path``
(``git worktree add /tmp/old 48f971e``, then
``PYTHONPATH=/tmp/old/src python make_unindexed_database.py``).
``test_run_index.py`` opens a copy with today's code.

What is in it (run ids ``old-NN``, started at 1000 + NN seconds):

- ``old-00`` .. ``old-03`` succeeded (their one message done);
- ``old-04`` failed (its message a dead letter);
- ``old-05`` cancelled (its message withdrawn);
- ``old-06`` .. ``old-09`` running (their message pending on queue ``old``).
"""

import sys
from pathlib import Path

import transaction
import ZODB
from ZODB.FileStorage import FileStorage

from dispatch.state import admin, broker

RECIPE = {"1": {"service": "old", "queue": "old"}, "start": [[1, {}]]}


def main(path):
    database = ZODB.DB(FileStorage(str(path)))
    connection = database.open()
    dispatch = broker.get_dispatch(connection.root())
    assert getattr(dispatch, "run_index", None) is None, "run with the old code"
    runs = [
        broker.start_run(dispatch, RECIPE, {"guid": f"old-{n:02d}"}, now=1000 + n)
        for n in range(10)
    ]
    for number in range(5):
        message = broker.claim(dispatch, "old", "maker", now=2000)
        assert message.run_id == runs[number].id
        if number < 4:
            broker.finish(dispatch, message, now=2001)
        else:
            broker.dead_letter(dispatch, message, "made to fail", now=2001)
    admin.cancel_run(dispatch, runs[5], now=2002)
    transaction.commit()
    connection.close()
    database.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "unindexed.fs"))
