"""The client cache: object records by (oid, tid range), bounded by bytes.

A record is the state of one object revision: ``data`` written by
transaction ``start`` and valid until ``end`` (the tid that replaced it), or
``end is None`` when it is the current revision as far as this client knows.
``load_before(oid, tid)`` answers from a record whose range covers *tid*,
exactly like the server's ``loadBefore``, so ZODB's MVCC reads of older
snapshots are served locally too.

Eviction is a segmented LRU (SLRU) instead of ZEO's circular FIFO.  New
records enter a *probation* segment; a record hit again moves to the
*protected* segment, which may hold at most 80 % of the bytes.  Evictions take
the least recently used probation record first.  A one-off scan (an export, a
pack script, a report reading every object once) therefore only churns the
probation segment and never flushes the hot working set, which FIFO and plain
LRU both do.  Every operation is O(1) under one lock held for a few dict
operations, so application threads read the cache without ever entering the
I/O loop.

Persistence: with a *path* the cache is loaded from that file at start and
written back atomically (temporary file, ``fsync``, rename) by
:meth:`ClientCache.save`, which the storage calls periodically and at close.
A saved file is a consistent snapshot: every record in it was valid at the
file's ``last_tid``, so after a crash the previous snapshot is still correct
and the client brings it up to date with the server's invalidation queue.
The file is locked with ``zc.lockfile`` (``<path>.lock``) so that two
processes never share one cache; a file that does not parse is moved aside to
``<path>.bad`` and an empty cache is started.
"""

import logging
import os
import threading
import zlib
from collections import OrderedDict

from ..cachetrace import open_trace
from .cachefile import (
    FILE_END,
    FILE_MAGIC,
    ZERO_TID,
    _crc,
    _header,
    _lock_cache_file,
    _parse_cache_file,
    _record_header,
)

logger = logging.getLogger(__name__)

MAX_TID = b"\x7f" + b"\xff" * 7  # ZODB.utils.maxtid: "the current revision"

# Share of the cache bytes the protected (hit at least twice) segment may
# use.  The remaining 20 % is where new records prove themselves; the same
# split as the SLRU of Caffeine/W-TinyLFU's main space.
PROTECTED_SHARE = 0.8

# Per-record bookkeeping cost counted against the size limit: the record
# object, its dict and OrderedDict slots.  Counting it keeps a cache full of
# tiny records from using many times its nominal size.
RECORD_OVERHEAD = 120


class CacheRecord:
    """One object revision held in the cache."""

    __slots__ = ("oid", "start", "end", "data", "size", "protected")

    def __init__(self, oid, start, end, data):
        self.oid = oid
        self.start = start
        self.end = end
        self.data = data
        self.size = len(data) + RECORD_OVERHEAD
        self.protected = False


class ClientCache:
    """Bounded cache of object records, optionally persisted in *path*.

    All methods are thread-safe.  Mutations (``store``, ``invalidate``,
    ``set_last_tid``) are made by the I/O thread in the order messages came
    off the wire; application threads only read.
    """

    def __init__(self, path=None, size=20 * 1024 * 1024):
        self.path = path
        self.maxsize = max(int(size), 0)
        self._lock = threading.Lock()
        self._current = {}  # oid -> CacheRecord with end None
        self._noncurrent = {}  # oid -> list of CacheRecord (end set)
        self._probation = OrderedDict()  # record -> None, LRU first
        self._protected = OrderedDict()
        self._bytes = 0
        self._protected_bytes = 0
        self._last_tid = None
        self._dirty = False
        self._lockfile = None
        # One writer of the file at a time (the periodic saver and close()),
        # held while writing: the main lock is not, so readers go on.
        self._save_lock = threading.Lock()
        self.hits = self.misses = self.evictions = 0
        self.stores = self.invalidations = 0
        # ZEO_CACHE_TRACE: None when off, so tracing costs one check.
        self._trace = open_trace(path)
        if path:
            self._lockfile = _lock_cache_file(path)
            try:
                self._load_file()
            except BaseException:
                self._lockfile.close()
                raise

    # -- reading (application threads) -----------------------------------

    def load_before(self, oid, tid):
        """Return ``(data, start, end)`` for the revision visible before *tid*.

        ``None`` means "not in the cache", never "does not exist".
        """
        with self._lock:
            trace = self._trace
            record = self._current.get(oid)
            if record is not None and record.start < tid:
                self._touch(record)
                self.hits += 1
                if trace is not None:
                    trace.write(0x22, oid, record.start, None, len(record.data))
                return record.data, record.start, None
            for record in self._noncurrent.get(oid, ()):
                if record.start < tid <= record.end:
                    self._touch(record)
                    self.hits += 1
                    if trace is not None:
                        trace.write(0x26, oid, record.start, record.end)
                    return record.data, record.start, record.end
            self.misses += 1
            if trace is not None:  # ZEO's load (0x20) or loadBefore miss
                code = 0x20 if tid == MAX_TID else 0x24
                trace.write(code, oid, None, None if code == 0x20 else tid)
            return None

    def load(self, oid):
        """Return ``(data, tid)`` of the current record or ``None``."""
        with self._lock:
            record = self._current.get(oid)
            if record is None:
                self.misses += 1
                if self._trace is not None:
                    self._trace.write(0x20, oid)
                return None
            self._touch(record)
            self.hits += 1
            if self._trace is not None:
                self._trace.write(0x22, oid, record.start, None, len(record.data))
            return record.data, record.start

    def load_serial(self, oid, serial):
        """Return the data written by *serial*, or ``None`` if not cached."""
        with self._lock:
            record = self._current.get(oid)
            if record is not None and record.start == serial:
                return record.data
            for record in self._noncurrent.get(oid, ()):
                if record.start == serial:
                    return record.data
            return None

    def contains(self, oid, tid):
        """Whether ``load_before(oid, tid)`` would hit (without counting)."""
        with self._lock:
            record = self._current.get(oid)
            if record is not None and record.start < tid:
                return True
            return any(r.start < tid <= r.end for r in self._noncurrent.get(oid, ()))

    @property
    def last_tid(self):
        """The tid up to which every record is known valid (or ``None``)."""
        return self._last_tid

    def __len__(self):
        with self._lock:
            return len(self._probation) + len(self._protected)

    @property
    def size_in_bytes(self):
        """Bytes counted against the limit (data plus per-record overhead)."""
        return self._bytes

    def statistics(self):
        """Counters since the cache was created, and its size now.

        ``loads`` = ``hits`` + ``misses`` (lookups by ``load`` and
        ``load_before``), ``stores`` records added, ``invalidations``
        current records ended by another transaction, ``evictions`` records
        dropped for room; ``records``, ``bytes`` and ``limit`` the size.
        """
        with self._lock:
            return {
                "loads": self.hits + self.misses,
                "hits": self.hits,
                "misses": self.misses,
                "hit_rate": self.hits / (self.hits + self.misses or 1),
                "stores": self.stores,
                "invalidations": self.invalidations,
                "evictions": self.evictions,
                "records": len(self._probation) + len(self._protected),
                "bytes": self._bytes,
                "limit": self.maxsize,
            }

    # -- writing (I/O thread) ---------------------------------------------

    def store(self, oid, start, end, data):
        """Add a record; *end* ``None`` makes it the current revision.

        A current record older than one already cached is ignored (the
        newer one wins), and storing never overwrites a record with the same
        start tid.
        """
        record = CacheRecord(oid, start, end, data)
        if record.size > self.maxsize:
            return
        with self._lock:
            if end is None:
                existing = self._current.get(oid)
                if existing is not None:
                    if existing.start >= start:
                        return
                    # A newer current revision arrived without an
                    # invalidation for the older one (our own commit does
                    # this): the old one ends where the new one starts.
                    self._make_noncurrent(existing, start)
                self._current[oid] = record
            else:
                current = self._current.get(oid)
                if current is not None and current.start == start:
                    return
                records = self._noncurrent.setdefault(oid, [])
                for other in records:
                    if other.start == start:
                        return
                records.append(record)
            self._probation[record] = None
            self._bytes += record.size
            self._dirty = True
            self.stores += 1
            if self._trace is not None:
                code = 0x52 if end is None else 0x54
                self._trace.write(code, oid, start, end, len(data))
            self._evict()

    def invalidate(self, oid, tid):
        """Transaction *tid* changed *oid*: end its current record at *tid*.

        With *tid* ``None`` every record of *oid* is dropped (used when the
        server says our view of the object is wrong, e.g. a ConflictError).
        """
        with self._lock:
            if tid is None:
                self._drop_oid(oid)
                return
            self._invalidate_locked(oid, tid)

    def drop_older_than(self, oid, tid):
        """The server says *oid* is at revision *tid*: drop every record of
        it unless the current one is that revision or newer (*tid* ``None``:
        drop them all)."""
        with self._lock:
            record = self._current.get(oid)
            if tid is not None and record is not None and record.start >= tid:
                return
            self._drop_oid(oid)

    def invalidate_many(self, oids, tid):
        """:meth:`invalidate` each oid, under one lock acquisition."""
        with self._lock:
            for oid in oids:
                self._invalidate_locked(oid, tid)

    def forget_many(self, oids):
        """Drop every record of each oid, under one lock acquisition.

        For changes whose tids are not known (quick verification names only
        the newest tid): a record ended at a guessed tid would be served
        for snapshots in which the object had already changed.
        """
        with self._lock:
            for oid in oids:
                self._drop_oid(oid)
            self._dirty = True

    def set_last_tid(self, tid):
        """Record that every invalidation up to *tid* has been applied."""
        with self._lock:
            if self._last_tid is not None and tid < self._last_tid:
                raise ValueError(
                    f"cache last tid would go backwards "
                    f"({self._last_tid.hex()} -> {tid.hex()})"
                )
            self._last_tid = tid
            self._dirty = True

    def clear(self):
        """Forget every record and the last tid."""
        with self._lock:
            self._current.clear()
            self._noncurrent.clear()
            self._probation.clear()
            self._protected.clear()
            self._bytes = self._protected_bytes = 0
            self._last_tid = None
            self._dirty = True

    def drop_noncurrent(self):
        """Forget non-current records (after a pack they may be gone)."""
        with self._lock:
            for records in self._noncurrent.values():
                for record in records:
                    self._unlink(record)
            self._noncurrent.clear()
            self._dirty = True

    # -- internals (lock held) ---------------------------------------------

    def _invalidate_locked(self, oid, tid):
        record = self._current.get(oid)
        if record is not None and record.start < tid:
            self._make_noncurrent(record, tid)
            self._dirty = True
            self.invalidations += 1
            if self._trace is not None:
                self._trace.write(0x1C, oid, tid)
        elif self._trace is not None:
            self._trace.write(0x10, oid, tid)

    def _touch(self, record):
        if record.protected:
            self._protected.move_to_end(record)
            return
        del self._probation[record]
        record.protected = True
        self._protected[record] = None
        self._protected_bytes += record.size
        limit = self.maxsize * PROTECTED_SHARE
        while self._protected_bytes > limit and len(self._protected) > 1:
            demoted, _ = self._protected.popitem(last=False)
            demoted.protected = False
            self._protected_bytes -= demoted.size
            self._probation[demoted] = None

    def _make_noncurrent(self, record, end):
        del self._current[record.oid]
        record.end = end
        self._noncurrent.setdefault(record.oid, []).append(record)

    def _unlink(self, record):
        if record.protected:
            del self._protected[record]
            self._protected_bytes -= record.size
        else:
            del self._probation[record]
        self._bytes -= record.size

    def _forget(self, record):
        self._unlink(record)
        if record.end is None:
            del self._current[record.oid]
        else:
            records = self._noncurrent[record.oid]
            records.remove(record)
            if not records:
                del self._noncurrent[record.oid]

    def _drop_oid(self, oid):
        if self._trace is not None:
            self._trace.write(0x1E, oid)
        record = self._current.pop(oid, None)
        if record is not None:
            self._unlink(record)
        for record in self._noncurrent.pop(oid, ()):
            self._unlink(record)
        self._dirty = True

    def _evict(self):
        while self._bytes > self.maxsize:
            segment = self._probation if self._probation else self._protected
            record = next(iter(segment))
            self._forget(record)
            self.evictions += 1

    # -- persistence ---------------------------------------------------------

    def save(self):
        """Write the cache to its file if it changed since the last save.

        The snapshot is taken under the lock (a copy of references, cheap)
        and written outside it, so readers are not blocked by disk I/O.
        Saves never overlap (they share one temporary file), and a cache
        that was closed is not written again: its file lock is released,
        another process may own the file now.
        """
        if not self.path:
            return False
        with self._save_lock:
            if self._lockfile is None:
                return False
            return self._write()

    def _write(self):
        """:meth:`save`'s work, with ``_save_lock`` held."""
        with self._lock:
            if not self._dirty:
                return False
            last_tid = self._last_tid
            records = list(self._probation) + list(self._protected)
            snapshot = [(r.oid, r.start, r.end, r.data) for r in records]
            self._dirty = False
        if last_tid is None:
            snapshot = []  # records without a tid cannot be verified later
        temporary = f"{self.path}.tmp"
        try:
            with open(temporary, "wb") as f:
                header = _header.pack(FILE_MAGIC, last_tid or ZERO_TID, len(snapshot))
                f.write(header)
                checksum = zlib.crc32(header)
                pack = _record_header.pack
                for oid, start, end, data in snapshot:
                    record_header = pack(oid, start, end or ZERO_TID, len(data))
                    f.write(record_header)
                    f.write(data)
                    checksum = zlib.crc32(data, zlib.crc32(record_header, checksum))
                f.write(FILE_END + _crc.pack(checksum))
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, self.path)
        except OSError:
            self._dirty = True
            logger.exception("could not save the client cache to %s", self.path)
            return False
        return True

    def _load_file(self):
        try:
            with open(self.path, "rb") as f:
                content = f.read()
        except FileNotFoundError:
            return
        try:
            last_tid, records = _parse_cache_file(content)
        except ValueError as exc:
            bad = f"{self.path}.bad"
            logger.warning(
                "client cache file %s is corrupt (%s); moved it to %s and "
                "started an empty cache",
                self.path,
                exc,
                bad,
            )
            os.replace(self.path, bad)
            return
        for oid, start, end, data in records:
            self.store(oid, start, end, data)
        self._last_tid = last_tid
        self._dirty = False
        logger.info(
            "loaded %d records from client cache %s (last tid %s)",
            len(self),
            self.path,
            last_tid.hex() if last_tid else None,
        )

    def close(self):
        """Save the cache (if persistent) and release its file lock."""
        with self._save_lock:
            if self._lockfile is not None:
                self._write()
                self._lockfile.close()
                self._lockfile = None
        if self._trace is not None:
            with self._lock:
                self._trace.close()
