"""Two-phase commit on the server: tpc_begin ... vote ... tpc_finish/abort.

Mixed into :class:`~.zeostorage.ZEOStorage`.  Until ``vote`` a transaction
only exists in the session's :class:`~.commitlog.CommitLog`; ``vote`` takes
the storage's commit lock (or queues for it and answers later), replays the
log into the storage and calls ``tpc_vote``; ``tpc_finish`` commits, tells
this client the new size (``info``), replies the tid, broadcasts
``invalidateTransaction`` to every other client of the storage and frees the
lock (PROTOCOL.md sections 6 and 7).
"""

import logging
import os
import shutil

from ZODB.Connection import TransactionMetaData
from ZODB.POSException import (
    ConflictError,
    POSError,
    ReadOnlyError,
    StorageTransactionError,
    TransactionError,
    UndoError,
)
from ZODB.utils import maxtid

from .commitlog import CommitLog

logger = logging.getLogger(__name__)


class _Delayed:
    """Marker: the method answers later through the connection."""

    def __repr__(self):
        return "DELAYED"


DELAYED = _Delayed()


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class CommitMixin:
    """The commit half of a session."""

    def init_transaction_state(self):
        self.transaction = None  # TransactionMetaData while one is open
        self.locked = False  # True between a successful vote and finish/abort
        self.commit_log = None
        self.blob_log = []  # (oid, serial, data, filename) waiting for vote
        self.blob_names = []  # the second names given to the storage
        self.blob_tempfile = None  # (descriptor, filename) while uploading
        self.invalidated = []  # oids to broadcast at finish
        self.serials = []  # oids the storage resolved (vote result)
        self.conflicts = {}  # oid -> conflict dict (client resolution)
        self.requested_tid = None
        self.status = " "
        self.external = None  # the shared storage's ExternalCommits, at vote

    def check_transaction(self, txn):
        """Raise unless *txn* is the open transaction of a writable session."""
        if self.read_only:
            raise ReadOnlyError()
        transaction = self.transaction
        if transaction is None:
            raise StorageTransactionError(f"no transaction in progress (got {txn!r})")
        if transaction.id != txn:
            raise StorageTransactionError(
                f"transaction {txn!r} is not the current one ({transaction.id!r})"
            )

    # -- one-way calls that fill the commit log -------------------------------

    def tpc_begin(self, txn, user, description, extension, tid=None, status=" "):
        if self.read_only:
            raise ReadOnlyError()
        if self.transaction is not None:
            if self.transaction.id == txn:
                self.log(f"duplicate tpc_begin({txn!r}) ignored", logging.DEBUG)
                return
            raise StorageTransactionError(
                "a second tpc_begin while a transaction is in progress"
            )
        if tid is not None and tid >= maxtid:
            # ZODB's storages take a requested tid as their clock even when
            # the transaction is then aborted: every later commit of every
            # client would get a tid past maxtid, which loads up to maxtid
            # never see.  No real database has such tids (found by fuzzing).
            raise StorageTransactionError(
                f"tpc_begin: the requested tid {tid.hex()} is not below ZODB's maxtid"
            )
        metadata = TransactionMetaData(_text(user), _text(description), extension)
        metadata.id = txn
        self.commit_log = CommitLog()
        self.blob_log = []
        self.blob_names = []
        self.invalidated = []
        self.serials = []
        self.conflicts = {}
        self.requested_tid = tid
        self.status = _text(status)
        self.stats.active_txns += 1
        # Set last: a failure above must not leave a half-open transaction.
        self.transaction = metadata

    def storea(self, oid, serial, data, txn):
        self.check_transaction(txn)
        self.stats.stores += 1
        self.commit_log.append("store", (oid, serial, data), len(data))

    def checkCurrentSerialInTransaction(self, oid, serial, txn):
        self.check_transaction(txn)
        self.commit_log.append("check", (oid, serial))

    def deleteObject(self, oid, serial, txn):
        self.check_transaction(txn)
        self.stats.stores += 1
        self.commit_log.append("delete", (oid, serial))

    def restorea(self, oid, serial, data, prev_txn, txn):
        self.check_transaction(txn)
        self.stats.stores += 1
        self.commit_log.append(
            "restore", (oid, serial, data, prev_txn), len(data or b"")
        )

    def undoa(self, transaction_id, txn):
        self.check_transaction(txn)
        self.commit_log.append("undo", (transaction_id,))

    # -- vote -----------------------------------------------------------------

    def vote(self, txn):
        self.check_transaction(txn)
        if self.locked:
            raise StorageTransactionError("vote called twice")
        lock = self.commit_lock
        if lock.try_acquire(self):
            return self._vote()
        if self in lock.waiting:
            raise StorageTransactionError("already waiting for the commit lock")
        msgid = self.msgid
        lock.enqueue(self, lambda: self._vote_when_locked(msgid))
        return DELAYED

    def _vote_when_locked(self, msgid):
        if not self.connected:
            self.commit_lock.release(self)
            return
        try:
            result = self._vote()
        except Exception as exc:
            self.connection.send_error(msgid, exc)
        else:
            self.connection.send_reply(msgid, result)

    def _vote(self):
        """Replay the log into the storage under the lock; see module doc."""
        storage = self.storage
        transaction = self.transaction
        self.external = self.server.external_commits.get(self.storage_id)
        try:
            if self.external is not None:
                self.external.before_vote()
            if self.requested_tid is not None or self.status != " ":
                storage.tpc_begin(transaction, self.requested_tid, self.status)
            else:
                storage.tpc_begin(transaction)
            # A client sends a blob's record twice, in storea and in
            # storeBlobEnd (PROTOCOL.md 10); storing both wrote two records
            # of one oid in the transaction, which makes FileStorage distrust
            # its index at the next start and reread the whole file.
            blob_oids = {entry[0] for entry in self.blob_log}
            for operation, args in self.commit_log:
                if operation == "store":
                    if args[0] not in blob_oids:
                        self._store(*args)
                elif operation == "check":
                    storage.checkCurrentSerialInTransaction(*args, transaction)
                elif operation == "delete":
                    if self.external is not None:
                        self.external.stale_delete(*args)
                    storage.deleteObject(*args, transaction)
                elif operation == "restore":
                    oid, serial, data, prev_txn = args
                    storage.restore(oid, serial, data, "", prev_txn, transaction)
                else:  # undo
                    # None: the storage reports the oids at vote (RelStorage).
                    try:
                        undone = storage.undo(args[0], transaction)
                    except (ValueError, TypeError, AssertionError) as error:
                        # A transaction id the storage cannot read (FileStorage
                        # decodes base64, binascii.Error, and asserts 8 bytes
                        # come out): the client's mistake, not the server's.
                        raise UndoError(
                            f"bad transaction id {args[0]!r}: {error}"
                        ) from None
                    if undone is not None:
                        self.invalidated.extend(undone[1])
                        self.serials.extend(undone[1])
            # The storage moves a blob file it is given into place, or away
            # when this attempt is aborted for client-side conflict resolution;
            # it gets a second name of the file, so a repeated vote still has
            # the upload (real ZEO loses the blob then).
            for oid, serial, data, filename in self.blob_log:
                self._store(oid, serial, data, self._second_name(filename))
            if not self.conflicts:
                try:
                    resolved = storage.tpc_vote(transaction)
                except ConflictError as error:
                    if not (
                        self.client_conflict_resolution
                        and error.oid
                        and error.serials
                        and getattr(error, "data", None)
                    ):
                        raise
                    self.conflicts[error.oid] = {
                        "oid": error.oid,
                        "serials": error.serials,
                        "data": error.data,
                    }
                else:
                    if resolved:
                        self.serials.extend(resolved)
                        # Undone oids reported at vote are not stored ones.
                        stored = set(self.invalidated)
                        self.invalidated.extend(o for o in resolved if o not in stored)
                        self.stats.conflicts_resolved += len(resolved)
            if self.conflicts:
                # The client resolves these, sends new stores and votes
                # again; the log is kept and replayed from the start.
                if self.external is not None:
                    self.external.conflicted()
                self._storage_abort()
                self.stats.conflicts += len(self.conflicts)
                self.commit_lock.release(self)
                return list(self.conflicts.values())
        except Exception as error:
            if isinstance(error, ConflictError) and self.external is not None:
                self.external.conflicted()
            self._abort_transaction()
            if isinstance(error, ConflictError):
                self.stats.conflicts += 1
            if not isinstance(error, (TransactionError, POSError)):
                logger.error(
                    "(%s) vote failed: %s: %s",
                    self.label,
                    type(error).__name__,
                    error,
                    exc_info=True,
                )
            raise
        self.locked = True
        return self.serials

    def _second_name(self, filename):
        """A new hard link to *filename* (a copy where links fail)."""
        name = f"{filename}.vote{len(self.blob_names)}"
        try:
            os.link(filename, name)
        except OSError:
            shutil.copyfile(filename, name)
        self.blob_names.append(name)
        return name

    def _store(self, oid, serial, data, blob_filename=None):
        try:
            if self.external is not None:
                # A shared storage (RelStorage): resolved first, see there.
                stored = self.external.stale_store(oid, serial, data)
                if stored[0] != serial:
                    serial, data = stored
                    self.serials.append(oid)
                    self.stats.conflicts_resolved += 1
            if blob_filename is None:
                self.storage.store(oid, serial, data, "", self.transaction)
            else:
                self.storage.storeBlob(
                    oid, serial, data, blob_filename, "", self.transaction
                )
        except ConflictError as error:
            if self.client_conflict_resolution and error.serials:
                self.conflicts[oid] = {
                    "oid": oid,
                    "serials": error.serials,
                    "data": data,
                }
            else:
                raise
        else:
            self.conflicts.pop(oid, None)
            self.invalidated.append(oid)

    # -- finish and abort -------------------------------------------------------

    def tpc_finish(self, txn):
        self.check_transaction(txn)
        if not self.locked:
            raise StorageTransactionError("tpc_finish without a successful vote")
        storage = self.storage
        finished = []
        self.server.before_finish(self.storage_id)
        try:
            tid = storage.tpc_finish(self.transaction, finished.append)
        except Exception:
            # Never keep the lock for a transaction the storage gave up on.
            logger.exception("(%s) storage tpc_finish failed", self.label)
            self._abort_transaction()
            raise
        if tid is None:
            tid = finished[0] if finished else storage.lastTransaction()
        self.stats.commits += 1
        # Commits other processes made before ours go out before ours.
        self.server.after_finish(self.storage_id, tid, self.invalidated)
        connection = self.connection
        connection.call_async("info", (self.get_size_info(),))
        connection.send_reply(self.msgid, tid)
        # Every other client hears of every transaction, even an empty one.
        self.server.invalidate(self, self.storage_id, tid, self.invalidated)
        self._clear_transaction()
        return DELAYED  # already answered, before the broadcast

    def tpc_abort(self, txn):
        transaction = self.transaction
        if transaction is None or transaction.id != txn:
            return None  # ZEO ignores an abort of an unknown transaction
        self._abort_transaction()
        return None

    def _abort_transaction(self):
        self.stats.aborts += 1
        if self.locked or self.commit_lock.holder is self:
            try:
                self._storage_abort()
            except Exception:
                logger.exception("(%s) storage tpc_abort failed", self.label)
        self._clear_transaction()

    def _storage_abort(self):
        self.storage.tpc_abort(self.transaction)
        self.server.after_finish(self.storage_id)

    def _clear_transaction(self):
        self.commit_lock.release(self)
        self.locked = False
        self.transaction = None
        self.stats.active_txns -= 1
        if self.commit_log is not None:
            self.commit_log.close()
            self.commit_log = None
        leftovers = [entry[3] for entry in self.blob_log] + self.blob_names
        for filename in leftovers:  # the storage moved the ones it kept
            try:
                os.remove(filename)
            except OSError:
                pass
        self.blob_log = []
        self.blob_names = []
        self.invalidated = []
        self.conflicts = {}
