"""The invalidation queue of one storage (PROTOCOL.md section 8).

It remembers which oids the last N transactions changed so that a client
that reconnects with a cache from a recent tid can be told exactly what to
drop ("quick verification") instead of clearing its whole cache.
"""

import collections
import logging
import time

from ZODB.TimeStamp import TimeStamp
from ZODB.utils import p64, u64, z64

logger = logging.getLogger(__name__)


class InvalidationQueue:
    """Newest-first ``(tid, oids)`` entries, at most *size* of them.

    *age* (seconds, or None) enables the fallback of ``invalidation-age``: a
    tid older than the queue but younger than *age* is answered by iterating
    the storage from that tid on.
    """

    def __init__(self, storage, size: int = 100, age: float | None = None):
        self.storage = storage
        self.size = max(int(size), 1)
        self.age = age
        self.entries = collections.deque(maxlen=self.size)
        self.reset()

    def reset(self):
        """(Re)fill the queue from the storage, as at server start."""
        self.entries.clear()
        last_invalidations = getattr(self.storage, "lastInvalidations", None)
        if last_invalidations is not None:
            # lastInvalidations returns oldest first.
            for tid, oids in last_invalidations(self.size):
                self.entries.appendleft((tid, list(oids)))
        if not self.entries:
            # A sentinel: its oids are never read (a client at exactly this
            # tid gets an empty answer), but it lets a client that was up to
            # date when the server started be told what it missed since.
            self.entries.append((self.storage.lastTransaction() or z64, None))

    def add(self, tid: bytes, oids):
        self.entries.appendleft((tid, oids))

    def __len__(self):
        return len(self.entries)

    def since(self, tid: bytes):
        """``(latest_tid, oids)`` changed after *tid*, or None if unknown."""
        entries = self.entries
        if entries and entries[-1][0] <= tid:
            oids = set()
            for entry_tid, entry_oids in entries:
                if entry_tid <= tid:
                    break
                oids.update(entry_oids)
            return entries[0][0], list(oids)
        if self.age and time.time() - TimeStamp(tid).timeTime() < self.age:
            return self._since_by_iteration(tid)
        logger.info(
            "tid %s is older than the invalidation queue (oldest %s)",
            u64(tid),
            u64(entries[-1][0]) if entries else None,
        )
        return None

    def _since_by_iteration(self, tid: bytes):
        oids = set()
        latest = None
        iterator = self.storage.iterator(p64(u64(tid) + 1))
        try:
            for transaction in iterator:
                for record in transaction:
                    oids.add(record.oid)
                latest = transaction.tid
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
        if latest is None:
            # Nothing newer than tid: the client is up to date.
            return tid, []
        return latest, list(oids)
