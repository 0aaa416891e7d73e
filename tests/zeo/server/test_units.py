"""Sans-IO parts of the server, without sockets: lock, queue, log, checks."""

from ZODB.Connection import TransactionMetaData
from ZODB.MappingStorage import MappingStorage
from ZODB.TimeStamp import TimeStamp
from ZODB.utils import p64, z64

from zeo.storageserver import commitlog
from zeo.storageserver.commitlog import CommitLog
from zeo.storageserver.invalidation import InvalidationQueue
from zeo.storageserver.lock import CommitLock
from zeo.storageserver.signatures import CHECKERS


class Session:
    def __init__(self, label):
        self.label = label
        self.timed_out = False

    def on_timeout(self):
        self.timed_out = True


def test_commit_lock_hands_over_first_come_first_served():
    lock = CommitLock("1")
    first, second, third = Session("a"), Session("b"), Session("c")
    granted = []
    assert lock.try_acquire(first)
    assert not lock.try_acquire(second)
    lock.enqueue(second, lambda: granted.append("b"))
    lock.enqueue(third, lambda: granted.append("c"))
    assert lock.locked_since is not None
    lock.release(first)
    assert granted == ["b"] and lock.holder is second
    lock.release(third)  # leaving the queue
    lock.release(second)
    assert granted == ["b"] and lock.holder is None and not lock.waiting


def test_commit_lock_skips_to_the_next_when_a_grant_releases_at_once():
    lock = CommitLock("1")
    sessions = [Session(str(i)) for i in range(4)]
    order = []
    assert lock.try_acquire(sessions[0])
    for session in sessions[1:]:

        def granted(session=session):
            order.append(session.label)
            lock.release(session)  # e.g. its vote failed

        lock.enqueue(session, granted)
    lock.release(sessions[0])
    assert order == ["1", "2", "3"] and lock.holder is None


def test_commit_lock_timeout_calls_the_holder():
    timers = []

    class Timer:
        cancelled = False

        def cancel(self):
            self.cancelled = True

    def schedule(delay, callback, *args):
        timers.append((delay, callback, args, Timer()))
        return timers[-1][3]

    lock = CommitLock("1", timeout=5, schedule=schedule)
    holder = Session("a")
    assert lock.try_acquire(holder)
    delay, callback, args, timer = timers[-1]
    assert delay == 5 and lock.timer_alive is True
    callback(*args)
    assert holder.timed_out
    lock.release(holder)
    assert CommitLock("2").timer_alive == "stub"


def test_invalidation_queue_is_bounded_and_answers_since():
    storage = MappingStorage()
    queue = InvalidationQueue(storage, size=3)
    assert len(queue) == 1  # the sentinel of the last transaction
    tids = [p64(100 + i) for i in range(5)]
    for number, tid in enumerate(tids):
        queue.add(tid, [p64(number)])
    assert len(queue) == 3
    latest, oids = queue.since(tids[2])
    # oids come from a set: their order is not part of the contract
    assert (latest, sorted(oids)) == (tids[4], [p64(3), p64(4)])
    assert queue.since(tids[4]) == (tids[4], [])
    assert queue.since(tids[0]) is None


def _commit(storage, oid, data):
    transaction = TransactionMetaData()
    storage.tpc_begin(transaction)
    storage.store(oid, z64, data, "", transaction)
    storage.tpc_vote(transaction)
    return storage.tpc_finish(transaction)


def test_invalidation_age_iterates_the_storage():
    storage = MappingStorage()
    tids = [_commit(storage, p64(number), b"data") for number in range(3)]
    # The queue only holds a sentinel for the last transaction.
    assert InvalidationQueue(storage, size=1).since(tids[0]) is None
    queue = InvalidationQueue(storage, size=1, age=3600)
    latest, oids = queue.since(tids[0])
    assert latest == tids[2] and sorted(oids) == [p64(1), p64(2)]
    too_old = TimeStamp(2001, 1, 1, 0, 0, 0).raw()
    assert queue.since(too_old) is None


def test_commit_log_spills_to_a_file_and_replays_twice(monkeypatch):
    monkeypatch.setattr(commitlog, "SPILL_SIZE", 100)
    log = CommitLog()
    entries = [("store", (p64(i), p64(0), b"x" * 30)) for i in range(10)]
    for operation, args in entries:
        log.append(operation, args, len(args[2]))
    assert log._file is not None
    assert list(log) == entries
    log.append("check", (p64(1), p64(2)))
    assert list(log) == [*entries, ("check", (p64(1), p64(2)))]
    assert log.stores == 11
    log.close()


def test_argument_checks_name_the_problem():
    assert CHECKERS["loadBefore"]((p64(1), p64(2))) is None
    assert "argument 1 must be an 8-byte oid" in CHECKERS["loadBefore"](("x", p64(2)))
    assert "takes 2 arguments, got 1" in CHECKERS["loadBefore"]((p64(1),))
    assert "takes 0 to 1 arguments" in CHECKERS["new_oids"]((1, 2))
    assert "must be a tuple" in CHECKERS["ping"]([])
    assert CHECKERS["tpc_begin"]((1, b"", b"", {})) is None
    assert CHECKERS["tpc_begin"]((1, "user", "", {}, None, " ")) is None
