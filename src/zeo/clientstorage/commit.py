"""Two-phase commit of :class:`~.storage.ClientStorage` (a mixin).

One transaction at a time per storage (threads sharing one ClientStorage
serialise their commits on ``_commit_lock``, as in ZEO).  ``tpc_begin`` to
``storeBlob`` are one-way messages bound to the connection the transaction
began on; ``tpc_vote`` is the first round trip.  If that connection is lost
the transaction fails with :class:`ClientDisconnected` (a transient error,
so transaction managers retry it).

Client-side conflict resolution: a server configured with
``client-conflict-resolution`` answers ``vote`` with ``{oid, serials,
data}`` dicts; we resolve them with ZODB's ``tryToResolveConflict`` (the
application classes are importable here, not necessarily on the server),
send the resolved records and vote again.

``tpc_finish`` updates the cache on the I/O thread when the reply arrives,
before any later invalidation is processed: old records of the changed
objects end at the new tid, the new states become current (except those the
server resolved, whose stored state we do not know), the cache's last tid
moves, ZODB's callback runs, and only then does ``lastTransaction()``
return the new tid.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ZODB.POSException import (
    ConflictError,
    ReadOnlyError,
    StorageTransactionError,
    Unsupported,
)

from ..exceptions import ClientDisconnected

if TYPE_CHECKING:
    from .blobs import BlobCache
    from .cache import ClientCache
    from .connection import ClientProtocol
    from .io import ClientIO
    from .watch import WatchDispatcher

logger = logging.getLogger(__name__)

# ZEO stops after this many vote rounds of client-side resolution; each
# round only happens when another client committed a conflicting change
# in between, so more rounds mean a hot spot no retry will fix.
MAX_RESOLUTION_ROUNDS = 9

# How often a tpc_begin waiting for another thread's commit checks whether
# the storage was closed meanwhile.
COMMIT_LOCK_POLL_SECONDS = 0.5

# What ZODB passes as the transaction: a ``TransactionMetaData`` (or another
# ``transaction.interfaces.ITransaction``-like object); ZODB is untyped.
Transaction = Any


class TransactionState:
    """What the client remembers about the transaction being committed."""

    __slots__ = ("transaction", "protocol", "stored", "other_oids", "blobs", "undo")

    def __init__(self, transaction: Transaction, protocol: ClientProtocol) -> None:
        self.transaction = transaction
        self.protocol = protocol
        # oid -> data to cache after finish, None: don't
        self.stored: dict[bytes, bytes | None] = {}
        # deleted / restored / undone: invalidate only
        self.other_oids: set[bytes] = set()
        # (oid, uploaded file to move into the blob cache)
        self.blobs: list[tuple[bytes, str | None]] = []
        self.undo = False

    def invalidate_only(self, oid: bytes) -> None:
        """*oid* changes in the commit, but not to data we can cache."""
        self.stored.pop(oid, None)
        self.other_oids.add(oid)


def _as_bytes(value: str | bytes | None) -> bytes:
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value)


class CommitMixin:
    """tpc_*, store, restore, deleteObject, storeBlob, undo."""

    # Set by ClientStorage (declared here for the type checker).
    cache: ClientCache
    _io: ClientIO
    _blob_cache: BlobCache | None
    _transaction: TransactionState | None
    _commit_lock: threading.Lock
    _tid_lock: threading.Lock
    _last_tid: bytes | None
    _closed: bool
    _watches: WatchDispatcher

    if TYPE_CHECKING:  # ClientStorage's and ZODB's ConflictResolvingStorage's

        def isReadOnly(self) -> bool: ...
        def _note_invalidation(self, tid: bytes, oids: Iterable[bytes]) -> None: ...
        def _collect_iterators(self) -> None: ...
        def tryToResolveConflict(
            self, oid: bytes, committed: bytes, read: bytes, data: bytes
        ) -> bytes: ...

    def _check(self, transaction: Transaction) -> TransactionState:
        if self.isReadOnly():
            raise ReadOnlyError()
        state = self._transaction
        if state is None or state.transaction is not transaction:
            raise StorageTransactionError(self, transaction)
        if state.protocol is not self._io.protocol:
            raise ClientDisconnected(
                "the connection this transaction began on was lost"
            )
        return state

    def _send(
        self, transaction: Transaction, method: str, *arguments: object
    ) -> TransactionState:
        """Send *method* within *transaction* (whose id the server takes as
        the last argument); returns the transaction's state."""
        state = self._check(transaction)
        self._io.send(method, *arguments, id(transaction), protocol=state.protocol)
        return state

    def tpc_begin(
        self, transaction: Transaction, tid: bytes | None = None, status: str = " "
    ) -> None:
        if self.isReadOnly():
            raise ReadOnlyError()
        state = self._transaction
        if state is not None and state.transaction is transaction:
            raise StorageTransactionError(
                "Duplicate tpc_begin calls for same transaction"
            )
        # Another thread's transaction may never end (ZODB's MTStorage
        # threads skip tpc_abort on errors): wake up now and then so that a
        # closed storage fails waiting commits instead of hanging them.
        while not self._commit_lock.acquire(timeout=COMMIT_LOCK_POLL_SECONDS):
            if self._closed:
                raise ClientDisconnected("the client storage is closed")
        try:
            if self._closed:
                raise ClientDisconnected("the client storage is closed")
            protocol = self._io.wait_connected()
            if protocol.read_only:
                raise ReadOnlyError()
            extension = getattr(transaction, "extension", None)
            if extension is None:
                extension = getattr(transaction, "_extension", None) or {}
            self._io.send(
                "tpc_begin",
                id(transaction),
                _as_bytes(transaction.user),
                _as_bytes(transaction.description),
                dict(extension),
                tid,
                status,
                protocol=protocol,
            )
        except BaseException:
            self._commit_lock.release()
            raise
        self._transaction = TransactionState(transaction, protocol)

    def store(
        self,
        oid: bytes,
        serial: bytes,
        data: bytes,
        version: str,
        transaction: Transaction,
    ) -> None:
        assert not version, "versions are not supported"
        state = self._send(transaction, "storea", oid, serial, data)
        state.stored[oid] = data

    def checkCurrentSerialInTransaction(
        self, oid: bytes, serial: bytes, transaction: Transaction
    ) -> None:
        self._send(transaction, "checkCurrentSerialInTransaction", oid, serial)

    def deleteObject(self, oid: bytes, serial: bytes, transaction: Transaction) -> None:
        self._send(transaction, "deleteObject", oid, serial).invalidate_only(oid)

    def restore(
        self,
        oid: bytes,
        serial: bytes,
        data: bytes | None,
        version: str,
        prev_txn: bytes | None,
        transaction: Transaction,
    ) -> None:
        assert not version, "versions are not supported"
        state = self._send(transaction, "restorea", oid, serial, data, prev_txn)
        state.invalidate_only(oid)

    def storeBlob(
        self,
        oid: bytes,
        serial: bytes,
        data: bytes,
        blobfilename: str,
        version: str,
        transaction: Transaction,
    ) -> None:
        assert not version, "versions are not supported"
        if self._blob_cache is None:
            raise Unsupported("this ClientStorage has no blob_dir")
        state = self._check(transaction)
        kept = self._blob_cache.send(
            self._io,
            state.protocol,
            oid,
            serial,
            data,
            blobfilename,
            id(transaction),
        )
        state.stored[oid] = data
        state.blobs.append((oid, kept))

    def undo(self, transaction_id: bytes, transaction: Transaction) -> None:
        self._send(transaction, "undoa", transaction_id).undo = True
        return None  # undone oids are reported by tpc_vote

    def tpc_vote(self, transaction: Transaction) -> list[bytes]:
        state = self._check(transaction)
        resolved: list[bytes] = []
        for _ in range(MAX_RESOLUTION_ROUNDS):
            try:
                result = self._io.call("vote", id(transaction), protocol=state.protocol)
            except ConflictError as exc:
                if getattr(exc, "oid", None) is not None:
                    # Our view of that object may be stale: drop it, unless
                    # the cache already holds the committed revision (the
                    # usual case: another thread of ours committed it), so
                    # the retry reads it without a round trip.
                    self.cache.drop_older_than(exc.oid, exc.get_new_serial())
                raise
            conflicts: list[dict[str, Any]] = []
            for item in result or ():
                if isinstance(item, dict):
                    conflicts.append(item)
                else:
                    # The server resolved it (or undo changed it): we do not
                    # know the stored state, so it must not be cached.
                    state.stored[item] = None
                    state.other_oids.add(item)
                    resolved.append(item)
            if not conflicts:
                return resolved
            for conflict in conflicts:
                oid = conflict["oid"]
                committed, read = conflict["serials"]
                data = self.tryToResolveConflict(oid, committed, read, conflict["data"])
                self._io.send(
                    "storea",
                    oid,
                    committed,
                    data,
                    id(transaction),
                    protocol=state.protocol,
                )
                state.stored[oid] = data
                resolved.append(oid)
        raise ConflictError(
            f"conflicts still unresolved after {MAX_RESOLUTION_ROUNDS} rounds"
        )

    def tpc_finish(
        self, transaction: Transaction, f: Callable[[bytes], object] | None = None
    ) -> bytes:
        state = self._check(transaction)
        try:
            tid = self._io.call(
                "tpc_finish",
                id(transaction),
                hook=lambda tid: self._apply_commit(state, tid, f),
                protocol=state.protocol,
            )
            for oid, filename in state.blobs:
                # storeBlob refused to run without a blob cache
                self._blob_cache.committed(oid, tid, filename)  # type: ignore[union-attr]
            return tid
        finally:
            self._end_transaction()

    def _apply_commit(
        self,
        state: TransactionState,
        tid: bytes,
        callback: Callable[[bytes], object] | None,
    ) -> bytes:
        """Our commit of *tid* succeeded (I/O thread, before later messages)."""
        changed = list(state.stored) + [
            oid for oid in state.other_oids if oid not in state.stored
        ]
        cache = self.cache
        # Under the tid lock, ``lastTransaction()`` waits until the cache
        # and ZODB (the callback) both know about this transaction.
        with self._tid_lock:
            cache.invalidate_many(changed, tid)
            for oid, data in state.stored.items():
                if data is not None:
                    cache.store(oid, tid, None, data)
            self._note_invalidation(tid, changed)
            if cache.last_tid is None or cache.last_tid < tid:
                cache.set_last_tid(tid)
            if tid > (self._last_tid or b""):
                self._last_tid = tid
            if callback is not None:
                try:
                    callback(tid)
                except Exception:
                    logger.exception("the tpc_finish callback failed")
        self._watches.notify(tid, changed)
        return tid

    def tpc_abort(self, transaction: Transaction) -> None:
        state = self._transaction
        if state is None or state.transaction is not transaction:
            return
        try:
            if state.protocol is self._io.protocol:
                self._io.call("tpc_abort", id(transaction), protocol=state.protocol)
        except ClientDisconnected:
            pass  # the server aborts it when the connection goes
        finally:
            for _, filename in state.blobs:
                if filename and os.path.exists(filename):
                    os.remove(filename)
            self._end_transaction()

    def _end_transaction(self) -> None:
        self._transaction = None
        self._commit_lock.release()
        self._collect_iterators()

    def tpc_transaction(self) -> Transaction | None:
        state = self._transaction
        return None if state is None else state.transaction
