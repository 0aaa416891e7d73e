"""Commits made by other processes into a shared storage (RelStorage).

A FileStorage belongs to one ``runzeo``: every commit passes through the
server, which tells its clients.  A RelStorage's database is shared: other
``runzeo`` processes, and programs opened on RelStorage directly, commit
into it too, and nothing calls us when they do.  RelStorage is an MVCC
storage (``IMVCCStorage``): an instance sees the database as of its last
``poll_invalidations()``, which also returns the oids changed since.

So, per such storage, an :class:`ExternalCommits` keeps a second instance
(the *watcher*) and polls it on a timer on the server's loop.  A poll that
finds a newer transaction than any the server has announced queues it;
when no commit is in progress on the served instance the queue is flushed:
the served instance polls too (its snapshot moves up to include those
commits, so a client that loads after the invalidation gets the new state),
then each queued transaction goes to every client as ``invalidateTransaction``.

Our own commits must not be overtaken: just before the served instance's
``tpc_finish`` (its vote holds RelStorage's database commit lock, so every
other writer's transaction is older than ours) the watcher polls once more
and those commits are sent before ours.  The watcher's next poll then
reports our own commit with a tid the server already announced, and it is
dropped.  A poll that returns None (the database was packed past the last
poll, or replaced) makes every client drop its cache, as ``invalidateCache``.

The size info a client gets after each commit (``len`` and ``getSize``)
costs RelStorage a new PostgreSQL connection each, and ``getSize`` runs
``pg_database_size``: two backends forked per commit made a commit take
15 to 300 ms (the machine's load).  So it is measured at the start, then
again in a thread at most every ``size-info-interval`` seconds (``<zeo>``
key, default :data:`SIZE_INFO_AGE`), and commits
send the last measure (the figures are estimates in RelStorage anyway).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from ZODB.interfaces import IMVCCStorage
from ZODB.POSException import ConflictError, POSKeyError
from ZODB.utils import p64, u64, z64

logger = logging.getLogger(__name__)

#: Seconds between polls when ``poll-interval`` is not set.
DEFAULT_POLL_INTERVAL = 0.1
#: Seconds a shared storage's size info is reused before it is measured again,
#: when ``size-info-interval`` is not set.
SIZE_INFO_AGE = 5.0


def is_shared(storage: Any) -> bool:
    """Whether *storage* can change under us (an MVCC storage: RelStorage)."""
    return IMVCCStorage.providedBy(storage)


class ExternalCommits:
    """Polls one shared storage for commits the server did not make."""

    def __init__(
        self,
        server,
        storage_id: str,
        root,
        interval: float,
        size_info_interval: float = SIZE_INFO_AGE,
    ):
        self.server = server
        self.storage_id = storage_id
        self.root = root
        #: The instance the server's sessions use.
        self.served = self.storage = root.new_instance()
        storage = self.storage
        self.interval = interval
        self.size_info_interval = size_info_interval
        self.watcher = root.new_instance()
        # The first poll only sets the watcher's starting point.
        self.watcher.poll_invalidations()
        self.storage.poll_invalidations()
        #: The newest tid the server has announced or knows about.
        self.known = max(self.watcher.lastTransaction(), storage.lastTransaction())
        self.pending: list[tuple[bytes, list[bytes]]] = []
        self.reset = False
        self.timer = None
        self.polls = 0
        self.external_transactions = 0
        self._size_info = self._measure_size()
        self._size_measured = time.monotonic()
        self._measuring = False

    def start(self, loop) -> None:
        self.timer = loop.call_later(self.interval, self._tick, loop)

    def _tick(self, loop) -> None:
        try:
            self.poll()
            if self.server.commit_locks[self.storage_id].holder is None:
                self.flush()
        except Exception:
            # A database that went away: log and try again next time; the
            # clients keep what they have (RelStorage reconnects by itself).
            logger.exception(
                "polling %r for other processes' commits failed", self.storage_id
            )
        self.timer = loop.call_later(self.interval, self._tick, loop)

    def poll(self) -> None:
        """Ask the watcher what changed; queue what the server has not said."""
        tid, oids = self._watch()
        if oids is None or tid <= self.known:
            return  # a reset, or our own commit, already announced
        self.pending.append((tid, list(oids)))
        self.known = tid
        self.external_transactions += 1

    def _watch(self) -> tuple[bytes, Any]:
        """The watcher's ``(tid, oids)`` since its last poll; oids None when
        the database lost that poll's transaction (then every client drops
        its cache, and the server knows *tid*)."""
        self.polls += 1
        before = self.watcher.lastTransaction()
        oids = self.watcher.poll_invalidations()
        tid = self.watcher.lastTransaction()
        if oids is None and before == z64:
            # RelStorage's answer after polling an empty database: nothing
            # was there to be cached, the transactions since only created.
            oids = []
        if oids is None:
            if tid != z64:
                logger.warning(
                    "%r: the database no longer has the last transaction "
                    "polled (packed or replaced): every client drops its cache",
                    self.storage_id,
                )
                self.reset = True
            self.known = max(self.known, tid)
        return tid, oids

    def conflicted(self) -> None:
        """A vote on the served instance met a ConflictError: another
        writer changed what a client read, and the client may not know yet
        (the next poll may be ``poll-interval`` away).  Its commit is
        queued now, so the abort's flush sends it before the error: the
        client's retry reads the new state instead of conflicting again
        until the next poll (a consumer retries at once).  Never raises:
        the vote's abort must still run (a database gone is left to the
        next tick, which logs it)."""
        try:
            self.poll()
        except Exception:
            logger.debug("polling %r after a conflict failed", self.storage_id)

    def before_finish(self) -> None:
        """The served instance voted (it holds the database's commit lock):
        collect every other writer's commit, older than ours, to send first."""
        self.poll()

    def after_transaction(
        self, tid: bytes | None = None, own: Iterable[bytes] = ()
    ) -> None:
        """A commit (of *tid*, changing *own*) or an abort ended on the
        served instance.  RelStorage ended its load connection's snapshot
        with it; a ZODB Connection polls at its next transaction before it
        loads, and so do we: a load first restarted the snapshot later than
        the instance's cache knew (RelStorage's StorageError "inconsistency
        between the RelStorage cache and the database", seen instead of a
        ConflictError)."""
        self.storage.poll_invalidations()
        later = None if tid is None else self._after_commit(tid, set(own))
        self.flush(polled=True)
        if later is not None:
            self.pending.append(later)  # after ours, at the next tick

    def _after_commit(
        self, tid: bytes, own: set[bytes]
    ) -> tuple[bytes, list[bytes]] | None:
        """Poll the watcher right after our commit *tid*, before it is
        announced.  RelStorage takes its commit lock (and chooses *tid*) in
        ``tpc_finish``, after :meth:`before_finish` polled: another writer
        may commit in between, older than ours.  The watcher's next poll
        then returns that commit's oids merged with ours under our tid,
        which the server has announced: they were dropped as our own, and
        its clients kept stale objects for good (issue 15's flaky two-server
        test).  The oids that are not ours are queued at ``tid - 1`` (the
        other commits are older than ours, newer than what was announced),
        sent before ours; when the poll also reached commits newer than
        ours they are returned, to be sent after ours at the poll's tid
        (invalidating too much costs a load, too little a stale object)."""
        polled, oids = self._watch()
        if oids is None:
            return None
        if polled < tid:  # not ours yet (cannot be: it is committed)
            if polled > self.known:
                self.pending.append((polled, list(oids)))
                self.known = polled
            return None
        others = sorted(set(oids) - own)
        before_ours = p64(u64(tid) - 1)
        if others and before_ours > self.known:
            self.pending.append((before_ours, others))
            self.external_transactions += 1
        self.known = max(self.known, polled)
        if polled > tid:
            self.external_transactions += 1
            return polled, others
        return None

    def before_vote(self) -> None:
        """A session holds our commit lock and replays its stores: the served
        instance moves up to the newest state (see :meth:`stale_store`)."""
        self.storage.poll_invalidations()

    def stale_store(self, oid: bytes, serial: bytes, data: bytes):
        """The ``(serial, data)`` to store for a client's ``(serial, data)``
        of *oid*, resolved against the current revision if another writer
        changed it since the client read it; ConflictError (with the serials
        and data, as ZODB's resolver gives it) if it cannot be resolved.

        RelStorage resolves a conflict it finds at vote from the state its
        snapshot holds, as a ZODB Connection's instance holds what its
        transaction read.  Our served instance moves up for every client:
        its current revision was then not the one the client based its
        change on, and RelStorage reported an inconsistency of its cache
        (StorageError) instead of a ConflictError, and reset the cache that
        the watcher shares.  Resolved here against the snapshot of
        :meth:`before_vote`, RelStorage only finds at vote the commits made
        since, of which that snapshot holds the base revision."""
        if serial == z64:
            return serial, data  # a new object
        try:
            current = self.storage.load(oid)[1]
        except POSKeyError:
            return serial, data  # gone (undone, packed): let the vote say so
        if current == serial:
            return serial, data
        return current, self.storage.tryToResolveConflict(oid, current, serial, data)

    def stale_delete(self, oid: bytes, serial: bytes) -> None:
        """ConflictError if *oid* changed since *serial* (IExternalGC's
        ``deleteObject``): RelStorage found that at vote as an inconsistency
        of its cache (StorageError), as for stores (see :meth:`stale_store`)."""
        try:
            current = self.storage.load(oid)[1]
        except POSKeyError:
            return  # gone: let the vote say so
        if current != serial:
            raise ConflictError(oid=oid, serials=(current, serial))

    def flush(self, polled: bool = False) -> None:
        """Move the served instance up and send what was queued, in order.
        Only when no commit is in progress on the served instance."""
        if not (self.pending or self.reset):
            return
        if not polled:
            self.storage.poll_invalidations()
        pending, self.pending = self.pending, []
        if self.reset:
            self.reset = False
            self.server.drop_clients(self.storage_id)
            return
        for tid, oids in pending:
            self.server.invalidate(None, self.storage_id, tid, oids)

    def announced(self, tid: bytes) -> None:
        """The server sent *tid* (its own commit)."""
        if tid > self.known:
            self.known = tid

    def size_info(self) -> dict:
        """``{"length", "size"}`` as measured at most size_info_interval ago, or
        before a new measure started now in a thread (see the module doc)."""
        if (
            not self._measuring
            and time.monotonic() - self._size_measured >= self.size_info_interval
        ):
            self._measuring = True
            threading.Thread(
                target=self._remeasure, name=f"size of {self.storage_id}", daemon=True
            ).start()
        return self._size_info

    def _measure_size(self) -> dict:
        # The root instance: no session uses it, and each of RelStorage's
        # two figures opens a connection of its own.
        return {"length": len(self.root), "size": self.root.getSize()}

    def _remeasure(self) -> None:
        try:
            self._size_info = self._measure_size()
        except Exception:
            logger.debug("measuring %r failed", self.storage_id, exc_info=True)
        finally:
            self._size_measured = time.monotonic()
            self._measuring = False

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        for instance in (self.watcher, self.served):
            try:
                instance.release()
            except Exception:
                logger.exception("releasing an instance of %r failed", self.storage_id)
