"""ClientCache on its own: no server, real files, real threads."""

import logging
import os
import subprocess
import sys
import threading

import pytest

from zeo.clientstorage.cache import RECORD_OVERHEAD, ClientCache
from zeo.exceptions import CacheError


def tid(n):
    return n.to_bytes(8, "big")


oid = tid


def test_current_and_noncurrent_records():
    cache = ClientCache(size=1 << 20)
    cache.store(oid(1), tid(10), None, b"v10")
    assert cache.load(oid(1)) == (b"v10", tid(10))
    assert cache.load_before(oid(1), tid(11)) == (b"v10", tid(10), None)
    assert cache.load_before(oid(1), tid(10)) is None  # nothing before 10 cached
    cache.invalidate(oid(1), tid(20))
    assert cache.load(oid(1)) is None
    assert cache.load_before(oid(1), tid(20)) == (b"v10", tid(10), tid(20))
    assert cache.load_before(oid(1), tid(21)) is None  # a miss, not "deleted"
    cache.store(oid(1), tid(20), None, b"v20")
    assert cache.load_before(oid(1), tid(21)) == (b"v20", tid(20), None)
    assert cache.load_before(oid(1), tid(15)) == (b"v10", tid(10), tid(20))
    assert cache.load_serial(oid(1), tid(10)) == b"v10"
    assert cache.load_serial(oid(1), tid(20)) == b"v20"


def test_invalidation_does_not_end_a_newer_record():
    cache = ClientCache(size=1 << 20)
    cache.store(oid(1), tid(30), None, b"v30")
    cache.invalidate(oid(1), tid(30))  # the invalidation of the same tid
    assert cache.load(oid(1)) == (b"v30", tid(30))
    cache.invalidate(oid(1), tid(25))  # an older one
    assert cache.load(oid(1)) == (b"v30", tid(30))


def test_older_current_record_does_not_replace_newer():
    cache = ClientCache(size=1 << 20)
    cache.store(oid(1), tid(30), None, b"v30")
    cache.store(oid(1), tid(10), None, b"v10")
    assert cache.load(oid(1)) == (b"v30", tid(30))


def test_invalidate_none_drops_every_revision():
    cache = ClientCache(size=1 << 20)
    cache.store(oid(1), tid(10), tid(20), b"old")
    cache.store(oid(1), tid(20), None, b"new")
    cache.invalidate(oid(1), None)
    assert cache.load_before(oid(1), tid(15)) is None
    assert cache.load(oid(1)) is None
    assert len(cache) == 0 and cache.size_in_bytes == 0


def test_drop_older_than_keeps_the_named_revision_or_newer():
    cache = ClientCache(size=1 << 20)
    cache.store(oid(1), tid(10), tid(20), b"old")
    cache.store(oid(1), tid(20), None, b"new")
    cache.drop_older_than(oid(1), tid(20))  # the cache already has it
    assert cache.load(oid(1)) == (b"new", tid(20))
    cache.drop_older_than(oid(1), tid(15))  # an older one: still current
    assert cache.load_before(oid(1), tid(15)) == (b"old", tid(10), tid(20))
    cache.drop_older_than(oid(1), tid(30))  # newer than ours: all stale
    assert cache.load(oid(1)) is None
    assert cache.load_before(oid(1), tid(15)) is None
    assert len(cache) == 0 and cache.size_in_bytes == 0
    cache.store(oid(2), tid(10), None, b"v")
    cache.drop_older_than(oid(2), None)  # revision unknown: drop
    assert cache.load(oid(2)) is None


def test_bounded_by_bytes_and_evicts_least_recently_used():
    record = 1000
    cache = ClientCache(size=10 * (record + RECORD_OVERHEAD))
    for n in range(10):
        cache.store(oid(n), tid(1), None, b"x" * record)
    assert len(cache) == 10
    for _ in range(2):  # oid 0..4 are hit: they move to the protected segment
        for n in range(5):
            assert cache.load(oid(n)) is not None
    for n in range(10, 15):  # five new records push out five old ones
        cache.store(oid(n), tid(1), None, b"x" * record)
    assert cache.size_in_bytes <= cache.maxsize
    assert all(cache.load(oid(n)) is not None for n in range(5))
    assert all(cache.load(oid(n)) is None for n in range(5, 10))
    assert cache.evictions == 5


def test_scan_does_not_flush_hot_records():
    record = 100
    cache = ClientCache(size=100 * (record + RECORD_OVERHEAD))
    for n in range(20):
        cache.store(oid(n), tid(1), None, b"h" * record)
        cache.load(oid(n))
    for n in range(1000, 2000):  # a one-off scan ten times the cache size
        cache.store(oid(n), tid(1), None, b"s" * record)
    assert all(cache.load(oid(n)) is not None for n in range(20))


def test_record_larger_than_cache_is_not_cached():
    cache = ClientCache(size=1000)
    cache.store(oid(1), tid(1), None, b"x" * 2000)
    assert cache.load(oid(1)) is None
    assert cache.size_in_bytes == 0


def test_last_tid_never_goes_backwards():
    cache = ClientCache()
    cache.set_last_tid(tid(5))
    with pytest.raises(ValueError):
        cache.set_last_tid(tid(4))
    assert cache.last_tid == tid(5)


def test_persistence_across_reopen(tmp_path):
    path = str(tmp_path / "client-1.zec")
    cache = ClientCache(path, size=1 << 20)
    cache.store(oid(1), tid(10), tid(20), b"old")
    cache.store(oid(1), tid(20), None, b"new")
    cache.store(oid(2), tid(12), None, b"two")
    cache.set_last_tid(tid(20))
    cache.close()
    reopened = ClientCache(path, size=1 << 20)
    try:
        assert reopened.last_tid == tid(20)
        assert reopened.load(oid(1)) == (b"new", tid(20))
        assert reopened.load_before(oid(1), tid(15)) == (b"old", tid(10), tid(20))
        assert reopened.load(oid(2)) == (b"two", tid(12))
    finally:
        reopened.close()


def test_a_closed_cache_never_writes_its_file_again(tmp_path):
    """A periodic save that wakes after close() must not write: the file
    lock is released and another process may own the file by then."""
    path = str(tmp_path / "c.zec")
    cache = ClientCache(path, size=1 << 20)
    cache.store(oid(1), tid(10), None, b"one")
    cache.set_last_tid(tid(10))
    cache.close()
    saved = open(path, "rb").read()
    cache.store(oid(2), tid(11), None, b"two")  # a late store: dirty again
    assert cache.save() is False
    assert open(path, "rb").read() == saved
    assert not os.path.exists(path + ".tmp")


def test_concurrent_saves_leave_a_valid_file(tmp_path, caplog):
    """Saves from several threads (the periodic saver, close()) share one
    temporary file: they must not write it at the same time (each save
    then fails or, worse, renames a file of mixed writes into place)."""
    path = str(tmp_path / "c.zec")
    cache = ClientCache(path, size=1 << 20)
    for n in range(300):
        cache.store(oid(n), tid(1), None, bytes(1000))
    cache.set_last_tid(tid(1))

    def save(first):
        for n in range(first, first + 30):
            cache.store(oid(1000 + n), tid(1), None, bytes(1000))  # dirty again
            cache.save()

    savers = [threading.Thread(target=save, args=(100 * i,)) for i in range(4)]
    for thread in savers:
        thread.start()
    for thread in savers:
        thread.join()
    cache.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    reopened = ClientCache(path, size=1 << 20)
    try:
        assert not os.path.exists(path + ".bad")
        assert len(reopened) == 300 + 4 * 30
    finally:
        reopened.close()


def test_records_without_a_tid_are_not_saved(tmp_path):
    path = str(tmp_path / "c.zec")
    cache = ClientCache(path)
    cache.store(oid(1), tid(10), None, b"x")
    cache.close()
    reopened = ClientCache(path)
    assert len(reopened) == 0 and reopened.last_tid is None
    reopened.close()


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[:-7],  # truncated
        lambda b: b"XXXX" + b[4:],  # bad magic
        lambda b: b[:30] + b"\xff\xff" + b[32:],  # garbage in a record header
        lambda b: b"",  # empty
    ],
    ids=["truncated", "magic", "garbage", "empty"],
)
def test_corrupt_file_is_moved_aside(tmp_path, damage, caplog):
    path = str(tmp_path / "c.zec")
    cache = ClientCache(path)
    cache.store(oid(1), tid(10), None, b"data" * 10)
    cache.set_last_tid(tid(10))
    cache.close()
    with open(path, "rb") as f:
        content = f.read()
    with open(path, "wb") as f:
        f.write(damage(content))
    reopened = ClientCache(path)
    try:
        assert len(reopened) == 0
        assert reopened.last_tid is None
        assert os.path.exists(path + ".bad")
        assert "corrupt" in caplog.text
    finally:
        reopened.close()


def test_second_process_gets_a_clear_lock_error(tmp_path):
    path = str(tmp_path / "shared.zec")
    code = (
        "import sys\n"
        "from zeo.clientstorage.cache import ClientCache\n"
        "from zeo.exceptions import CacheError\n"
        "try:\n"
        f"    ClientCache({path!r})\n"
        "except CacheError as exc:\n"
        "    print(exc); sys.exit(3)\n"
    )
    cache = ClientCache(path)
    try:
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
    finally:
        cache.close()
    assert result.returncode == 3, result.stderr
    assert path in result.stdout
    assert "in use by another process" in result.stdout
    # Once released, a new process can open it.
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_lock_error_in_same_process(tmp_path):
    path = str(tmp_path / "c.zec")
    cache = ClientCache(path)
    try:
        with pytest.raises(CacheError, match="in use"):
            ClientCache(path)
    finally:
        cache.close()


def test_concurrent_loads_and_invalidations_never_return_stale_data():
    """Readers at a snapshot must see exactly the state of that snapshot.

    One writer thread plays the I/O thread: for each new tid it invalidates
    and stores a new current record for a set of objects, then publishes the
    tid.  Reader threads pick the published tid and check that every
    object's state read before ``tid + 1`` is the one written at the latest
    tid <= the snapshot.  A cache that let a reader see a current record
    after its invalidation was applied (ZEO issues #155, #166) fails this.
    """
    cache = ClientCache(size=1 << 22)
    objects = 20
    published = [0]
    stop = threading.Event()
    errors = []

    def state(n, t):
        return b"%d@%d" % (n, t)

    for n in range(objects):
        cache.store(oid(n), tid(1), None, state(n, 1))
    cache.set_last_tid(tid(1))
    published[0] = 1

    def writer():
        for t in range(2, 3000):
            changed = [oid(n) for n in range(objects) if (n + t) % 3 == 0]
            cache.invalidate_many(changed, tid(t))
            for o in changed:
                cache.store(o, tid(t), None, state(int.from_bytes(o, "big"), t))
            cache.set_last_tid(tid(t))
            published[0] = t
        stop.set()

    def last_change(n, snapshot):
        for t in range(snapshot, 1, -1):
            if (n + t) % 3 == 0:
                return t
        return 1

    def reader():
        while not stop.is_set():
            snapshot = published[0]
            for n in range(objects):
                result = cache.load_before(oid(n), tid(snapshot + 1))
                if result is None:
                    continue  # evicted or not cached: a miss is fine
                expected = last_change(n, snapshot)
                if result[0] != state(n, expected):
                    errors.append((n, snapshot, result))
                    stop.set()

    threads = [threading.Thread(target=reader) for _ in range(4)]
    threads.append(threading.Thread(target=writer))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors[:5]
