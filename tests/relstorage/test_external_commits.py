"""runzeo's watcher of a RelStorage database (zeo.storageserver.external),
in process over a real PostgreSQL: a commit another process makes while
ours is finishing still reaches this server's clients."""

from __future__ import annotations

import transaction
import ZODB
import ZODB.config
from persistent.mapping import PersistentMapping
from ZODB.utils import p64, u64

from tests.support.postgresql import relstorage_config
from zeo.storageserver.server import StorageServer


def open_storage(dsn: str):
    return ZODB.config.storageFromString(
        "%import relstorage\n" + relstorage_config(dsn)
    )


def commit(db, name: str, value: int) -> bytes:
    manager = transaction.TransactionManager()
    connection = db.open(manager)
    try:
        connection.root()[name]["value"] = value
        manager.commit()
        return connection.root()[name]._p_oid
    finally:
        connection.close()


def announced(server) -> list[tuple[bytes, list[bytes]]]:
    """The server's invalidations, oldest first."""
    return list(reversed(server.invalidation_queues["1"].entries))


def test_a_commit_between_our_poll_and_our_finish_is_announced_before_ours(database):
    others = ZODB.DB(open_storage(database))
    ours = ZODB.DB(open_storage(database))
    server = StorageServer({"1": open_storage(database)})
    try:
        with others.transaction() as connection:
            connection.root()["theirs"] = PersistentMapping()
            connection.root()["ours"] = PersistentMapping()
        external = server.external_commits["1"]
        external.poll()
        external.flush()
        start = len(announced(server))
        # What RelStorage allows: the watcher polled before our finish
        # (before_finish), then another process commits, then ours takes
        # the commit lock and a newer tid.
        external.before_finish()
        their_oid = commit(others, "theirs", 1)
        our_oid = commit(ours, "ours", 1)
        our_tid = ours.storage.lastTransaction()
        # What a session's tpc_finish then does: after_finish, announce.
        server.after_finish("1", our_tid, [our_oid])
        server.invalidate(None, "1", our_tid, [our_oid])
        external.poll()
        external.flush()
        sent = announced(server)[start:]
        assert sent[-1] == (our_tid, [our_oid])
        assert sent[:-1] == [(p64(u64(our_tid) - 1), [their_oid])]
    finally:
        server.close()
        others.close()
        ours.close()
