"""Our ClientStorage against a real server: store, load, commit, interfaces."""

import threading

import pytest
import transaction
import ZODB
import ZODB.interfaces
from persistent.mapping import PersistentMapping
from ZODB.Connection import TransactionMetaData
from ZODB.POSException import ConflictError, POSKeyError, ReadConflictError
from ZODB.tests.MinPO import MinPO
from ZODB.tests.StorageTestBase import zodb_pickle
from ZODB.utils import maxtid, p64, z64
from zope.interface.verify import verifyObject

from tests.zeo.client.conftest import wait_until


def commit_record(storage, oid, serial, data):
    """Store one record in its own transaction; return the new tid."""
    txn = TransactionMetaData()
    storage.tpc_begin(txn)
    storage.store(oid, serial, data, "", txn)
    storage.tpc_vote(txn)
    return storage.tpc_finish(txn)


def test_store_and_load(server, client_factory):
    storage = client_factory(server.addr)
    oid = storage.new_oid()
    tid = commit_record(storage, oid, z64, b"first state")
    assert storage.lastTransaction() == tid
    assert storage.load(oid) == (b"first state", tid)
    other = client_factory(server.addr)
    assert other.load(oid) == (b"first state", tid)
    assert other.loadBefore(oid, p64(int.from_bytes(tid, "big") + 1)) == (
        b"first state",
        tid,
        None,
    )
    assert other.loadBefore(oid, tid) is None
    with pytest.raises(POSKeyError):
        other.load(p64(999999))


def test_new_oids_are_fetched_in_batches(server, client_factory):
    storage = client_factory(server.addr)
    oids = [storage.new_oid() for _ in range(150)]
    assert len(set(oids)) == 150
    # 150 oids took two new_oids calls of 100: 50 are left locally.
    assert len(storage._oids) == 50


def test_verify_interfaces(start_server, client_factory):
    server = start_server(msgpack=True, blobs=True)
    storage = client_factory(server.addr, blob_dir=str(server.directory / "cache"))
    for interface in (
        ZODB.interfaces.IStorage,
        ZODB.interfaces.IMultiCommitStorage,
        ZODB.interfaces.IStorageIteration,
        ZODB.interfaces.IStorageUndoable,
        ZODB.interfaces.IStorageRestoreable,
        ZODB.interfaces.IBlobStorage,
        ZODB.interfaces.IExternalGC,
        ZODB.interfaces.IStorageCurrentRecordIteration,
    ):
        assert interface.providedBy(storage), interface
        verifyObject(interface, storage)


def test_conflict_error_carries_oid_and_serials(server, client_factory):
    storage = client_factory(server.addr)
    oid = storage.new_oid()
    first = commit_record(storage, oid, z64, zodb_pickle(MinPO(1)))
    second = commit_record(storage, oid, first, zodb_pickle(MinPO(2)))
    txn = TransactionMetaData()
    storage.tpc_begin(txn)
    # Based on a stale serial; MinPO cannot resolve conflicts.
    storage.store(oid, first, zodb_pickle(MinPO(3)), "", txn)
    with pytest.raises(ConflictError) as info:
        storage.tpc_vote(txn)
    storage.tpc_abort(txn)
    assert info.value.oid == oid
    assert set(info.value.serials) == {first, second}
    # The storage is usable after the abort, and the committed revision we
    # already cached is read without a round trip (the retry starts sooner).
    misses = storage.cache.misses
    assert storage.load(oid) == (zodb_pickle(MinPO(2)), second)
    assert storage.cache.misses == misses


def test_read_conflict_from_check_current_serial(server, client_factory):
    storage = client_factory(server.addr)
    oid, other_oid = storage.new_oid(), storage.new_oid()
    first = commit_record(storage, oid, z64, zodb_pickle(MinPO(1)))
    commit_record(storage, oid, first, zodb_pickle(MinPO(2)))
    txn = TransactionMetaData()
    storage.tpc_begin(txn)
    storage.store(other_oid, z64, b"x", "", txn)
    storage.checkCurrentSerialInTransaction(oid, first, txn)
    with pytest.raises(ReadConflictError):
        storage.tpc_vote(txn)
    storage.tpc_abort(txn)


def test_invalidation_reaches_second_database(server, client_factory):
    db1 = ZODB.DB(client_factory(server.addr))
    db2 = ZODB.DB(client_factory(server.addr))
    try:
        tm1, tm2 = transaction.TransactionManager(), transaction.TransactionManager()
        c1, c2 = db1.open(tm1), db2.open(tm2)
        c1.root()["value"] = 1
        tm1.commit()
        tm2.begin()
        wait_until(lambda: (tm2.begin(), c2.root().get("value"))[1] == 1)
        c1.root()["value"] = 2
        tm1.commit()

        def sees_two():
            tm2.begin()
            return c2.root()["value"] == 2

        wait_until(sees_two, message="second client sees the change")
        c1.close()
        c2.close()
    finally:
        db1.close()
        db2.close()


def test_concurrent_conflicting_commits_through_zodb(server, client_factory):
    """Threads sharing one storage bump one counter: no increment is lost.

    A thread can lose a conflict only to a commit made by another thread
    since its read, and each retry reads at least that commit, so a thread
    needs at most (the others' commits + 1) attempts per increment.  A thread
    that needs more read a stale state; scheduling can starve a thread up
    to that bound (ZEO's client too), so the bound, not a guess, is the
    number of attempts.
    """
    threads_n, times = 3, 10
    bound = (threads_n - 1) * times + 1
    db = ZODB.DB(client_factory(server.addr))
    try:
        with db.transaction() as conn:
            conn.root()["counter"] = PersistentMapping(n=0)
        errors = []

        def bump():
            tm = transaction.TransactionManager()
            conn = db.open(tm)
            try:
                for _ in range(times):
                    for attempt in tm.attempts(bound):
                        with attempt:
                            conn.root()["counter"]["n"] += 1
            except Exception as exc:  # reported below, with the others'
                errors.append(exc)
            finally:
                conn.close()

        threads = [threading.Thread(target=bump) for _ in range(threads_n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not any(thread.is_alive() for thread in threads)
        assert not errors
        with db.transaction() as conn:
            assert conn.root()["counter"]["n"] == threads_n * times
    finally:
        db.close()


def test_stale_current_reply_is_not_cached(server, client_factory):
    """A "current" load reply older than an invalidation processed while it
    was in flight (a server answering out of order) must not be cached.

    The wire order of a real server never produces this, so the I/O-thread
    hook is driven directly: the invalidation is recorded between the
    moment the hook is made (request sent) and the moment it runs (reply).
    """
    storage = client_factory(server.addr)
    oid = p64(424242)
    hook = storage._load(oid, maxtid)["hook"]
    storage._note_invalidation(p64(20), [oid])  # arrives before the reply
    assert hook((b"old", p64(10), None)) == (b"old", p64(10), None)
    assert storage.cache.load(oid) is None  # returned, not cached
    fresh_hook = storage._load(oid, maxtid)["hook"]
    fresh_hook((b"new", p64(20), None))
    assert storage.cache.load(oid) == (b"new", p64(20))
    other = p64(434343)
    unrelated_hook = storage._load(other, maxtid)["hook"]
    storage._note_invalidation(p64(30), [oid])  # another object changed
    unrelated_hook((b"x", p64(10), None))
    assert storage.cache.load(other) == (b"x", p64(10))


def test_cache_reachable_under_zeos_private_name(server, client_factory):
    # zodbshootout empties ZEO's cache with db.storage._cache.clear() between
    # its cold-read loops; without the alias its "cold" reads are all hits.
    storage = client_factory(server.addr)
    oid = storage.new_oid()
    commit_record(storage, oid, z64, b"state")
    assert storage.cache.load(oid) is not None
    storage._cache.clear()
    assert storage.cache.load(oid) is None
