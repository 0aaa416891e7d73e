"""Disconnects, restarts, verification, stale caches and read-only fallback."""

import logging
import shutil
import threading

import pytest
from ZODB.Connection import TransactionMetaData
from ZODB.POSException import ReadOnlyError
from ZODB.tests.MinPO import MinPO
from ZODB.tests.StorageTestBase import zodb_pickle, zodb_unpickle
from ZODB.utils import z64

from tests.zeo.client.conftest import wait_until
from tests.zeo.client.test_basic import commit_record
from zeo.exceptions import ClientDisconnected


def value(storage, oid):
    return zodb_unpickle(storage.load(oid)[0]).value


def test_calls_wait_for_the_server_to_come_back(start_server, client_factory):
    server = start_server(msgpack=True)
    storage = client_factory(server.addr, wait_timeout=60)
    oid = storage.new_oid()
    commit_record(storage, oid, z64, zodb_pickle(MinPO(1)))
    server.stop()
    wait_until(lambda: not storage.is_connected(), message="disconnect noticed")
    results = []
    waiting = threading.Thread(target=lambda: results.append(storage.history(oid)))
    waiting.start()
    server.start()
    waiting.join(60)
    assert len(results) == 1 and len(results[0]) == 1
    assert storage.is_connected()


def test_calls_give_up_after_wait_timeout(start_server, client_factory):
    server = start_server(msgpack=False)
    # Not waited for with the 1 s timeout: a loaded machine may take longer
    # to connect the first time.
    storage = client_factory(server.addr, wait=False, wait_timeout=1)
    wait_until(storage.is_connected, message="the first connection")
    server.stop()
    wait_until(lambda: not storage.is_connected())
    with pytest.raises(ClientDisconnected, match="after waiting 1 s"):
        storage.ping()
    server.start()
    wait_until(storage.is_connected, message="reconnect")
    storage.ping()


def test_transaction_begun_before_a_disconnect_fails(start_server, client_factory):
    server = start_server(msgpack=True)
    storage = client_factory(server.addr)
    oid = storage.new_oid()
    txn = TransactionMetaData()
    storage.tpc_begin(txn)
    storage.store(oid, z64, zodb_pickle(MinPO(1)), "", txn)
    server.stop()
    server.start()
    wait_until(storage.is_connected, message="reconnect")
    with pytest.raises(ClientDisconnected):
        storage.tpc_vote(txn)
    storage.tpc_abort(txn)
    commit_record(storage, oid, z64, zodb_pickle(MinPO(2)))  # usable again
    assert value(storage, oid) == 2


def test_quick_verification_sees_changes_made_while_away(
    start_server, client_factory, msgpack
):
    server = start_server(msgpack=msgpack)
    away = client_factory(server.addr, disconnect_poll=6, max_disconnect_poll=6)
    changed, unchanged = away.new_oid(), away.new_oid()
    t1 = commit_record(away, changed, z64, zodb_pickle(MinPO(1)))
    commit_record(away, unchanged, z64, zodb_pickle(MinPO(10)))
    assert value(away, changed) == 1
    seen = []
    away.watch(lambda tid, oids: seen.append((tid, list(oids))))
    server.stop()
    wait_until(lambda: not away.is_connected())
    # The change goes through a server of the same file on another port:
    # the away client, which retries every ~6 s, cannot come back before it
    # however slowly servers start on a loaded machine.
    elsewhere = start_server("elsewhere", msgpack=msgpack, data_fs=server.data_fs)
    other = client_factory(elsewhere.addr)
    t3 = commit_record(other, changed, t1, zodb_pickle(MinPO(2)))
    other.close()
    elsewhere.stop()
    assert not away.is_connected(), "precondition: the change happened while away"
    server.start()
    wait_until(away.is_connected, timeout=60, message="reconnect")
    assert away.lastTransaction() == t3
    assert value(away, changed) == 2
    # Only the changed object left the cache: the rest was kept (not dropped).
    assert away.cache.load(unchanged) is not None
    wait_until(lambda: (t3, [changed]) in seen)


def test_cache_too_old_for_the_queue_is_dropped(start_server, client_factory):
    import transaction
    import ZODB

    server = start_server(msgpack=True, invalidation_queue_size=2)
    away = client_factory(server.addr, disconnect_poll=6, max_disconnect_poll=6)
    db = ZODB.DB(away)
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    from persistent.mapping import PersistentMapping

    conn.root()["value"] = 1
    conn.root()["untouched"] = PersistentMapping()
    tm.commit()
    untouched = conn.root()["untouched"]._p_oid
    assert away.cache.load(untouched) is not None
    server.stop()
    wait_until(lambda: not away.is_connected())
    # Through a server of the same file on another port, so that the away
    # client cannot come back before the changes (see the test above).
    elsewhere = start_server("elsewhere", msgpack=True, data_fs=server.data_fs)
    other = ZODB.DB(client_factory(elsewhere.addr))
    for n in range(2, 6):  # more transactions than the queue holds
        with other.transaction() as other_conn:
            other_conn.root()["value"] = n
    other.close()
    elsewhere.stop()
    assert not away.is_connected(), "precondition: the changes happened while away"
    server.start()
    wait_until(away.is_connected, timeout=60, message="reconnect")
    # Not only the changed root: the whole cache was dropped.
    assert away.cache.load(untouched) is None
    tm.begin()  # ZODB dropped its object caches too: the new state is seen
    assert conn.root()["value"] == 5
    conn.close()
    db.close()


def test_persistent_cache_survives_restart(start_server, client_factory, tmp_path):
    server = start_server(msgpack=True)
    path = str(tmp_path / "client-1.zec")
    first = client_factory(server.addr, cache=path)
    oids = [first.new_oid() for _ in range(5)]
    for n, oid in enumerate(oids):
        commit_record(first, oid, z64, zodb_pickle(MinPO(n)))
    first.close()
    second = client_factory(server.addr, cache=path)
    misses = second.cache.misses
    assert [value(second, oid) for oid in oids] == list(range(5))
    assert second.cache.misses == misses  # every load was a cache hit


def test_client_and_var_name_the_cache_file(start_server, client_factory, tmp_path):
    server = start_server(msgpack=True)
    storage = client_factory(server.addr, client="app", var=str(tmp_path))
    assert storage.cache.path == str(tmp_path / "app-1.zec")
    storage.close()
    assert (tmp_path / "app-1.zec").exists()


def test_cache_ahead_of_server_is_refused_with_advice(
    start_server, client_factory, tmp_path, caplog
):
    server = start_server(msgpack=True)
    path = str(tmp_path / "client-1.zec")
    storage = client_factory(server.addr, cache=path)
    oid = storage.new_oid()
    commit_record(storage, oid, z64, zodb_pickle(MinPO(1)))
    storage.close()
    server.stop()
    backup = tmp_path / "old.fs"
    shutil.copy(server.data_fs, backup)
    server.start()
    storage = client_factory(server.addr, cache=path)
    commit_record(storage, storage.new_oid(), z64, zodb_pickle(MinPO(2)))
    storage.close()  # the cache has now seen a tid the backup lacks
    server.stop()
    for suffix in ("", ".index", ".tmp", ".lock"):
        target = str(server.data_fs) + suffix
        if suffix == "":
            shutil.copy(backup, target)
        else:
            try:
                import os

                os.remove(target)
            except FileNotFoundError:
                pass
    server.start()
    with caplog.at_level(logging.CRITICAL, logger="zeo.clientstorage.io"):
        with pytest.raises(ClientDisconnected) as info:
            client_factory(server.addr, cache=path, wait_timeout=3)
    assert path in str(info.value)
    assert "Delete the cache file" in str(info.value)
    assert any(
        r.levelno == logging.CRITICAL and path in r.getMessage() for r in caplog.records
    )


def test_read_only_fallback_then_switch_to_writable(
    start_server, client_factory, tmp_path
):
    read_only = start_server("ro", msgpack=True, read_only=True)
    storage = client_factory(
        [read_only.addr, ("127.0.0.1", 1)],  # the second address: nothing listens
        read_only_fallback=True,
        disconnect_poll=0.5,
    )
    assert storage.isReadOnly()
    with pytest.raises(ReadOnlyError):
        storage.tpc_begin(TransactionMetaData())
    with pytest.raises(ReadOnlyError):
        storage.new_oid()
    # Both databases are empty, so the switch needs no cache verification.
    writable = start_server("rw", msgpack=True)
    storage.new_addr([read_only.addr, writable.addr])
    wait_until(lambda: storage.is_connected() and not storage.isReadOnly(), timeout=60)
    commit_record(storage, storage.new_oid(), z64, zodb_pickle(MinPO(1)))


def test_read_only_server_without_fallback_is_not_used(start_server, client_factory):
    server = start_server(msgpack=False, read_only=True)
    with pytest.raises(ClientDisconnected, match="read-only"):
        client_factory(server.addr, wait_timeout=2)
    storage = client_factory(server.addr, read_only=True)
    assert storage.isReadOnly()
    storage.ping()


def test_client_started_before_its_server_on_a_unix_socket(tmp_path, impl):
    """ZEO issue #226: a client that starts first must keep retrying."""
    from tests.zeo.client.conftest import Server
    from zeo.clientstorage import ClientStorage

    path = tmp_path / "zeo.sock"
    storage = ClientStorage(str(path), wait=False, disconnect_poll=0.2)
    server = Server(impl, tmp_path / "server", msgpack=True, unix_socket=path)
    try:
        assert not storage.is_connected()
        server.start()
        wait_until(storage.is_connected, timeout=60, message="late connection")
        oid = storage.new_oid()
        tid = commit_record(storage, oid, z64, zodb_pickle(MinPO(7)))
        assert storage.load(oid)[1] == tid
    finally:
        storage.close()
        server.stop()


def test_oids_handed_out_before_a_server_crash_are_not_used_after_it(
    start_server, client_factory
):
    # Found by bench/soak/zeo_crash.py: a server killed and restarted counts
    # new oids on from its last committed one, so the rest of a batch the
    # client fetched before the crash is handed out again to other clients,
    # and two new objects got one oid.
    server = start_server(msgpack=True)
    first = client_factory(server.addr, wait_timeout=60)
    used = first.new_oid()  # the first of a batch fetched from the server
    server.kill()
    wait_until(lambda: not first.is_connected(), message="disconnect noticed")
    server.start()
    wait_until(first.is_connected, message="reconnect")
    second = client_factory(server.addr)
    theirs = {second.new_oid() for _ in range(3)}
    mine = first.new_oid()
    assert mine not in theirs | {used}


def test_quick_verification_keeps_no_history_it_cannot_date(
    start_server, client_factory, tmp_path
):
    # Found by bench/soak/zeo_ridethrough.py: getInvalidations names the
    # newest tid only, not the tid each object changed in, so a cached
    # revision must not be kept as "valid until that newest tid": a load
    # before it would return a revision that was replaced earlier.
    server = start_server(msgpack=True)
    path = str(tmp_path / "client-1.zec")
    first = client_factory(server.addr, cache=path)
    changed, later = first.new_oid(), first.new_oid()
    t1 = commit_record(first, changed, z64, zodb_pickle(MinPO(1)))
    assert value(first, changed) == 1
    first.close()
    other = client_factory(server.addr)
    t2 = commit_record(other, changed, t1, zodb_pickle(MinPO(2)))
    t3 = commit_record(other, later, z64, zodb_pickle(MinPO(3)))
    other.close()
    back = client_factory(server.addr, cache=path)
    assert back.lastTransaction() == t3
    data, start, end = back.loadBefore(changed, t3)
    assert (zodb_unpickle(data).value, start, end) == (2, t2, None)
    assert zodb_unpickle(back.loadBefore(changed, t2)[0]).value == 1
