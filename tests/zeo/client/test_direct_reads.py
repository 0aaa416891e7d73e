"""Application threads reading their own replies (zeo.clientstorage.direct).

A thread that makes a call on a plain connection reads the reply itself;
what it must not act on (invalidations, another thread's commit, the end of
the connection) goes to the I/O thread in wire order.  Against both servers:
the client is ours, the behaviour is the client's.
"""

import threading

import pytest
from ZODB.Connection import TransactionMetaData
from ZODB.tests.MinPO import MinPO
from ZODB.tests.StorageTestBase import zodb_pickle, zodb_unpickle
from ZODB.utils import z64

from tests.zeo.client.conftest import wait_until
from tests.zeo.client.test_basic import commit_record
from zeo.exceptions import ClientDisconnected


def value(storage, oid):
    return zodb_unpickle(storage.load(oid)[0]).value


def reading(storage):
    """The msgid an application thread is blocked reading for, or None."""
    protocol = storage._io.protocol
    return None if protocol is None else protocol.session.reader


class Vote(threading.Thread):
    """``tpc_begin``/``store``/``tpc_vote``/``tpc_finish`` of one new object,
    in a thread, keeping what happened."""

    def __init__(self, storage):
        super().__init__(daemon=True)
        self.storage = storage
        self.oid = storage.new_oid()
        self.outcome = None
        self.returned = threading.Event()

    def run(self):
        storage, txn = self.storage, TransactionMetaData()
        try:
            storage.tpc_begin(txn)
            storage.store(self.oid, z64, zodb_pickle(MinPO("a")), "", txn)
            storage.tpc_vote(txn)
            self.outcome = ("voted", storage.tpc_finish(txn))
        except Exception as exc:
            self.outcome = ("error", exc)
            try:
                storage.tpc_abort(txn)
            except Exception:
                pass
        self.returned.set()


def hold_commit_lock(storage, oid, data):
    """Vote a transaction on *storage* and leave it holding the server's
    commit lock; returns it, for ``tpc_finish``."""
    txn = TransactionMetaData()
    storage.tpc_begin(txn)
    storage.store(oid, storage.load(oid)[1], data, "", txn)
    storage.tpc_vote(txn)
    return txn


def vote_blocked_behind(server, client_factory):
    """Client *a* blocked reading its vote's reply while *b* holds the
    commit lock on an object *a* has cached."""
    a = client_factory(server.addr)
    b = client_factory(server.addr)
    shared = a.new_oid()
    commit_record(a, shared, z64, zodb_pickle(MinPO(1)))
    wait_until(lambda: value(b, shared) == 1, message="b sees the first commit")
    assert value(a, shared) == 1  # now in a's cache
    held = hold_commit_lock(b, shared, zodb_pickle(MinPO(2)))
    voter = Vote(a)
    voter.start()
    wait_until(lambda: reading(a) is not None, message="a's thread reads its reply")
    assert not voter.returned.is_set()
    return a, b, shared, held, voter


def test_an_invalidation_read_by_a_waiting_caller_is_applied_on_the_io_thread(
    server, client_factory
):
    a, b, shared, held, voter = vote_blocked_behind(server, client_factory)
    applied = []
    invalidate = a.callbacks["invalidateTransaction"]

    def recording(tid, oids):
        applied.append((threading.current_thread().name, voter.returned.is_set()))
        invalidate(tid, oids)

    a.callbacks["invalidateTransaction"] = recording
    tid = b.tpc_finish(held)
    assert voter.returned.wait(30), "the vote never returned"
    assert voter.outcome[0] == "voted", voter.outcome
    # The server sent b's invalidation before a's vote reply: a's reader
    # handed it to the I/O thread, which applied it before the reply.
    ((thread, vote_returned_before),) = applied
    assert thread.startswith("zeo client I/O")
    assert vote_returned_before is False
    assert a.lastTransaction() > tid
    assert value(a, shared) == 2  # the cached revision was invalidated
    assert value(a, voter.oid) == "a"


def test_closing_the_storage_wakes_a_thread_reading_its_reply(server, client_factory):
    a, b, _shared, held, voter = vote_blocked_behind(server, client_factory)
    a.close()
    assert voter.returned.wait(30), "the reading thread was not woken"
    kind, error = voter.outcome
    assert kind == "error" and isinstance(error, ClientDisconnected), voter.outcome
    b.tpc_finish(held)  # the server is unharmed and b still works


def test_a_server_killed_under_a_reading_thread_fails_its_call(
    start_server, client_factory
):
    server = start_server(msgpack=True)
    a, _b, shared, _held, voter = vote_blocked_behind(server, client_factory)
    server.kill()
    assert voter.returned.wait(30), "the reading thread never saw the end"
    kind, error = voter.outcome
    assert kind == "error" and isinstance(error, ClientDisconnected), voter.outcome
    server.start()
    wait_until(a.is_connected, message="reconnect")
    # b's vote died with the server, so the first commit is still there.
    assert value(a, shared) == 1
    commit_record(a, shared, a.load(shared)[1], zodb_pickle(MinPO(3)))
    assert value(a, shared) == 3


def test_calls_are_answered_while_the_io_thread_is_busy(server, client_factory):
    """The reply reaches the calling thread without the I/O thread."""
    storage = client_factory(server.addr)
    oid = storage.new_oid()
    commit_record(storage, oid, z64, zodb_pickle(MinPO(5)))
    storage._cache.clear()
    loop_blocked, release, loop_free = (threading.Event() for _ in range(3))

    def block():
        loop_blocked.set()
        release.wait(20)  # through the loop, the calls would wait this long
        loop_free.set()

    storage._io.loop.call_soon_threadsafe(block)
    assert loop_blocked.wait(30)
    try:
        storage.ping()
        assert value(storage, oid) == 5  # a cache miss, read and cached here
        assert storage._cache.load_before(oid, b"\xff" * 8) is not None
        assert not loop_free.is_set(), "the replies waited for the I/O thread"
    finally:
        release.set()


@pytest.mark.parametrize("size", [8 << 20])
def test_a_record_larger_than_the_socket_buffers_round_trips(
    server, client_factory, size
):
    """Writing blocks with the read role taken: it is given back first."""
    storage = client_factory(server.addr)
    other = client_factory(server.addr)
    oid = storage.new_oid()
    big = MinPO(bytes(range(256)) * (size // 256))
    commit_record(storage, oid, z64, zodb_pickle(big))
    assert value(other, oid) == big.value
