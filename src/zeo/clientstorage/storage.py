"""``ClientStorage``: a ZODB storage served by a ZEO 5/6 server.

Reads are answered from the client cache on the calling thread; a miss is
one round trip through the I/O thread (:mod:`.io`), whose reply enters the
cache on that thread in wire order with invalidations.  Writes follow
:mod:`.commit`.  The interfaces the storage provides beyond IStorage and
IMultiCommitStorage are taken from the server's ``get_info()['interfaces']``
(as ZEO does), so ZODB only uses undo, iteration, restore, blobs and
external GC when the served storage has them.
"""

from __future__ import annotations

import logging
import os
import ssl as ssl_module
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, Any

import ZODB.BaseStorage
import ZODB.blob
import ZODB.ConflictResolution
import ZODB.interfaces
import zope.interface
from ZODB.POSException import POSKeyError, ReadOnlyError, Unsupported
from ZODB.utils import maxtid, z64

from ..exceptions import ClientDisconnected
from .blobs import BlobCache
from .cache import ClientCache
from .commit import CommitMixin
from .io import ClientIO, normalize_addresses
from .iterators import IteratorRegistry, TransactionIterator
from .loadrace import InvalidationLog, LoadBeforeResult, LoadHook
from .watch import Watch, WatchCallback, WatchDispatcher

logger = logging.getLogger(__name__)

MB = 1024 * 1024

# One server: (host, port), a port on 127.0.0.1, or a Unix socket path.
ServerAddress = tuple[str, int] | int | str | bytes

# Interfaces we implement and enable when the server's storage has them.
OPTIONAL_INTERFACES = (
    ZODB.interfaces.IStorageRestoreable,
    ZODB.interfaces.IStorageIteration,
    ZODB.interfaces.IStorageUndoable,
    ZODB.interfaces.IStorageCurrentRecordIteration,
    ZODB.interfaces.IBlobStorage,
    ZODB.interfaces.IExternalGC,
)


@zope.interface.implementer(
    ZODB.interfaces.IStorage, ZODB.interfaces.IMultiCommitStorage
)
class ClientStorage(CommitMixin, ZODB.ConflictResolution.ConflictResolvingStorage):
    """A storage whose data lives on a ZEO server (see ``docs/zeo-client.rst``)."""

    def __init__(
        self,
        addr: ServerAddress | Sequence[ServerAddress],
        storage: str = "1",
        cache_size: int = 20 * MB,
        name: str = "",
        cache: str | None = None,
        client: str | None = None,
        var: str | None = None,
        blob_dir: str | None = None,
        shared_blob_dir: bool = False,
        blob_cache_size: int | None = None,
        blob_cache_size_check: int = 10,
        read_only: bool = False,
        read_only_fallback: bool = False,
        server_sync: bool = False,
        wait: bool = True,
        wait_timeout: float | None = 30,
        client_label: str | None = None,
        disconnect_poll: float = 1,
        min_disconnect_poll: float | None = None,
        max_disconnect_poll: float | None = 10,
        ssl: ssl_module.SSLContext | None = None,
        ssl_server_hostname: str | None = None,
        credentials: object = None,
        username: str | None = None,
        password: str | None = None,
        realm: str | None = None,
        drop_cache_rather_verify: bool = True,
        cache_save_interval: float | None = 60,
        debug: bool = False,
    ) -> None:
        if credentials or username or password or realm:
            logger.warning(
                "credentials are ignored: ZEO 5/6 servers authenticate clients "
                "by TLS certificates only (use ssl=)"
            )
        if min_disconnect_poll is not None:
            disconnect_poll = min_disconnect_poll
        disconnect_poll = disconnect_poll or 1
        addresses = normalize_addresses(addr)
        self._storage_name = str(storage)
        self._name = name or str(addr)
        self._read_only = bool(read_only)
        self._server_sync = server_sync
        if cache is None and client:
            cache = os.path.join(var or os.getcwd(), f"{client}-{storage}.zec")
        self.cache = ClientCache(cache, cache_size)
        # ZEO's name: tools such as zodbshootout empty the cache through it.
        self._cache = self.cache
        self._blob_cache: BlobCache | None = None
        self.blob_dir = blob_dir
        if blob_dir is not None:
            self._blob_cache = BlobCache(
                blob_dir, shared_blob_dir, blob_cache_size, blob_cache_size_check
            )
        self.shared_blob_dir = shared_blob_dir
        self._info: dict[str, Any] = {"length": 0, "size": 0, "name": self._name}
        self._last_tid: bytes | None = None
        self._tid_lock = threading.Lock()
        self._db: Any = None  # the ZODB.DB using this storage
        self._transaction = None
        self._commit_lock = threading.Lock()
        self._oids: list[bytes] = []
        self._oids_generation = -1  # ClientIO.generation they were fetched in
        self._oid_lock = threading.Lock()
        self._iterators = IteratorRegistry()
        self._watches = WatchDispatcher(self._name)
        self._invalidations = InvalidationLog()
        self._connected_read_only = False
        self._closed = False
        self.callbacks: dict[str, Callable[..., Any]] = {
            "invalidateTransaction": self._invalidate_transaction,
            "info": self._info.update,
        }
        if self._blob_cache is not None:
            self.callbacks.update(
                receiveBlobStart=self._blob_cache.receive_start,
                receiveBlobChunk=self._blob_cache.receive_chunk,
                receiveBlobStop=self._blob_cache.receive_stop,
            )
        self._io = ClientIO(
            self,
            addresses,
            storage_name=self._storage_name,
            read_only=self._read_only,
            read_only_fallback=read_only_fallback,
            disconnect_poll=disconnect_poll,
            max_disconnect_poll=max_disconnect_poll or 10,
            ssl=ssl,
            ssl_server_hostname=ssl_server_hostname,
            client_label=client_label,
            wait_timeout=wait_timeout if wait_timeout is not None else 30,
        )
        self._saver_stop = threading.Event()
        self._saver: threading.Thread | None = None
        if self.cache.path and cache_save_interval:
            self._saver = threading.Thread(
                target=self._save_periodically,
                args=(cache_save_interval,),
                name="zeo cache saver",
                daemon=True,
            )
            self._saver.start()
        self._io.start()
        if wait:
            try:
                self._io.wait_connected()
            except ClientDisconnected:
                self.close()
                raise

    # -- callbacks from the I/O thread --------------------------------------------

    def _invalidate_transaction(self, tid: bytes, oids: Iterable[bytes]) -> None:
        """Another client committed *tid* (server callback, wire order)."""
        if self._last_tid is not None and tid <= self._last_tid:
            logger.debug("ignoring old invalidation for %s", tid.hex())
            return
        oids = list(oids)
        with self._tid_lock:
            self.cache.invalidate_many(oids, tid)
            self._note_invalidation(tid, oids)
            self.cache.set_last_tid(tid)
            self.deliver_invalidations(tid, oids)

    def _note_invalidation(self, tid: bytes, oids: Iterable[bytes]) -> None:
        self._invalidations.note(tid, oids)

    def deliver_invalidations(
        self, tid: bytes, oids: Sequence[bytes], notify_db: bool = True
    ) -> None:
        """Tell ZODB, then move ``lastTransaction``, then wake watchers.

        Called on the I/O thread with ``_tid_lock`` held, so that
        ``lastTransaction()`` (which takes it too) never returns a tid whose
        invalidations have not reached the cache and ZODB (ZODB >= 5.6
        relies on this).
        """
        if notify_db and self._db is not None:
            self._db.invalidate(tid, oids)
        self.set_last_transaction(tid)
        self._watches.notify(tid, oids)

    def set_last_transaction(self, tid: bytes) -> None:
        if self._last_tid is None or tid > self._last_tid:
            self._last_tid = tid

    def last_seen_tid(self) -> bytes | None:
        return self._last_tid

    def notify_cache_dropped(self) -> None:
        self._invalidations.forget()
        if self._db is not None:
            self._db.invalidateCache()

    def notify_disconnected(self) -> None:
        self._iterators.disconnected()

    def set_server_info(self, info: Mapping[str, Any], read_only: bool) -> None:
        self._info.update(info)
        self._connected_read_only = read_only
        offered = {tuple(i) for i in info.get("interfaces", ())}
        for interface in OPTIONAL_INTERFACES:
            if (interface.__module__, interface.__name__) not in offered:
                continue
            if interface is ZODB.interfaces.IBlobStorage and self._blob_cache is None:
                continue
            zope.interface.alsoProvides(self, interface)

    # -- loads ---------------------------------------------------------------

    def loadBefore(self, oid: bytes, tid: bytes) -> LoadBeforeResult | None:
        result = self.cache.load_before(oid, tid)
        if result is not None:
            return result
        return self._io.call("loadBefore", oid, tid, retry=True, **self._load(oid, tid))

    def _load(self, oid: bytes, tid: bytes) -> dict[str, Any]:
        """A load's msgid and hook: it caches the reply unless already stale
        (see :mod:`.loadrace`); any thread reading the reply may run it."""
        hook: LoadHook = self._invalidations.cache_hook(self.cache, oid)
        return {"msgid": (oid, tid), "hook": hook, "anywhere": True}

    def load(self, oid: bytes, version: str = "") -> tuple[bytes, bytes]:
        # One cache lookup, counted once: current = visible before maxtid.
        result = self.loadBefore(oid, maxtid)
        if result is None:
            raise POSKeyError(oid)
        return result[:2]

    def loadSerial(self, oid: bytes, serial: bytes) -> bytes:
        # Not from the cache: after a pack the server must say the revision
        # is gone (ZEO behaves the same).
        return self._io.call("loadSerial", oid, serial, retry=True)

    def getTid(self, oid: bytes) -> bytes:
        return self._io.call("getTid", oid, retry=True)

    def prefetch(self, oids: Iterable[bytes], tid: bytes) -> None:
        """Ask for the states of *oids* as of *tid* without waiting."""
        for oid in oids:
            if not self.cache.contains(oid, tid):
                self._io.send_call_nowait(
                    "loadBefore", oid, tid, **self._load(oid, tid)
                )

    # -- other IStorage methods ----------------------------------------------------

    def new_oid(self) -> bytes:
        if self.isReadOnly():
            raise ReadOnlyError()
        with self._oid_lock:
            # Oids fetched before a reconnect are dropped: a server restarted
            # after a crash counts on from its last committed oid and hands
            # them out again (the crash soak saw two new objects share one).
            # The generation is read before the call, so a batch fetched over
            # a connection replaced meanwhile is dropped by the next call.
            if self._oids and self._oids_generation != self._io.generation:
                self._oids = []
            if not self._oids:
                self._oids_generation = self._io.generation
                self._oids = list(reversed(self._io.call("new_oids", retry=True)))
            return self._oids.pop()

    def lastTransaction(self) -> bytes:
        with self._tid_lock:
            return self._last_tid or z64

    def history(self, oid: bytes, size: int = 1) -> list[dict[str, Any]]:
        return self._io.call("history", oid, size, retry=True)

    def record_iternext(
        self, next: bytes | None = None
    ) -> tuple[bytes, bytes, bytes, bytes | None]:
        return self._io.call("record_iternext", next, retry=True)

    def getName(self) -> str:
        return self._name

    def getSize(self) -> int:
        return self._info.get("size", 0)

    def __len__(self) -> int:
        return self._info.get("length", 0)

    def sortKey(self) -> str:
        return f"zeo:{self._io.addresses}:{self._storage_name}"

    def isReadOnly(self) -> bool:
        return self._read_only or self._connected_read_only

    def supportsUndo(self) -> bool:
        return bool(self._info.get("supportsUndo"))

    def registerDB(self, db: Any) -> None:
        super().registerDB(db)  # record-data transforms for conflict resolution
        self._db = db

    def sync(self) -> None:
        """With ``server_sync``, a round trip so every invalidation the
        server sent before now is applied (read-your-writes across
        processes)."""
        if self._server_sync:
            self.ping()

    def ping(self) -> None:
        self._io.call("ping", retry=True)

    def is_connected(self, test: bool = False) -> bool:
        if test and self._io.is_connected():
            try:
                self.ping()
            except ClientDisconnected:
                return False
        return self._io.is_connected()

    def server_status(self) -> dict[str, Any]:
        return self._io.call("server_status", retry=True)

    def new_addr(self, addr: ServerAddress | Sequence[ServerAddress]) -> None:
        """Use *addr* from now on; drop the connection if it is not in it."""
        addresses = normalize_addresses(addr)
        self._io.addresses = addresses
        protocol = self._io.protocol
        if protocol is not None and protocol.address not in addresses:
            self._io.loop.call_soon_threadsafe(protocol.close)

    def cache_statistics(self) -> dict[str, Any]:
        """The client cache's counters and size (``docs/zeo-client.rst``)."""
        return self.cache.statistics()

    def clear_cache(self) -> None:
        """Drop every cached record (the cache's last tid stays)."""
        last_tid = self.cache.last_tid
        self.cache.clear()
        if last_tid is not None:
            self.cache.set_last_tid(last_tid)

    def pack(
        self,
        t: float | None = None,
        referencesf: Callable[..., Any] | None = None,
        wait: int = 1,
        days: float = 0,
        gc: bool = True,
    ) -> Any:
        """Pack the server's storage as of *t* (``referencesf`` is unused:
        the server has its own).  ``gc=False`` packs without garbage
        collection; it needs a server with the zeopapa ``pack`` extension
        (a third argument), real ZEO servers refuse it."""
        if t is None:
            t = time.time()
        t -= days * 86400
        args = (t, wait) if gc else (t, wait, False)
        try:
            result = self._io.call("pack", *args)
        except TypeError as exc:
            if gc:
                raise
            raise Unsupported(
                f"this server cannot pack without garbage collection ({exc}); "
                f"only zeopapa servers support pack(..., gc=False)"
            )
        # Packed-away revisions must not be served from the caches.  Current
        # records of objects the pack collected stay until evicted (ZODB
        # cannot reach them any more); blob files are re-downloadable.
        self.cache.drop_noncurrent()
        if self._blob_cache is not None:
            self._blob_cache.clear()
        return result

    def undoLog(
        self,
        first: int = 0,
        last: int = -20,
        filter: Callable[[dict[str, Any]], bool] | None = None,
    ) -> list[dict[str, Any]]:
        log = self._io.call("undoLog", first, last, retry=True)
        if filter is not None:
            log = [entry for entry in log if filter(entry)]
        return list(log)

    def undoInfo(
        self,
        first: int = 0,
        last: int = -20,
        specification: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        return list(self._io.call("undoInfo", first, last, specification, retry=True))

    def iterator(
        self, start: bytes | None = None, stop: bytes | None = None
    ) -> TransactionIterator:
        self._collect_iterators()
        iid = self._io.call("iterator_start", start, stop)
        return self._iterators.add(iid, TransactionIterator(self, iid))

    def _collect_iterators(self) -> None:
        dead = self._iterators.collectable()
        if dead:
            self._send_iterator_gc(list(dead))

    def _send_iterator_gc(self, iids: list[int]) -> None:
        if self._io.protocol is not None:
            try:
                self._io.send("iterator_gc", iids)
            except ClientDisconnected:
                pass

    def copyTransactionsFrom(self, other: Any, verbose: int = 0) -> None:
        ZODB.BaseStorage.copy(other, self, verbose)

    # -- blobs ----------------------------------------------------------------------

    def _require_blobs(self) -> BlobCache:
        if self._blob_cache is None:
            raise Unsupported("this ClientStorage has no blob_dir")
        return self._blob_cache

    def loadBlob(self, oid: bytes, serial: bytes) -> str:
        return self._require_blobs().load(oid, serial, self._io)

    def openCommittedBlobFile(
        self, oid: bytes, serial: bytes, blob: Any = None
    ) -> IO[bytes]:
        for attempt in range(2):
            path = self.loadBlob(oid, serial)
            try:
                if blob is None:
                    return open(path, "rb")
                return ZODB.blob.BlobFile(path, "r", blob)
            except FileNotFoundError:
                if attempt:
                    raise  # pruned twice in a row: give up
        raise AssertionError("unreachable")  # pragma: no cover

    def temporaryDirectory(self) -> str:
        return self._require_blobs().temporary_directory()

    # -- beyond ZEO ---------------------------------------------------------------

    def watch(
        self, callback: WatchCallback, oids: Iterable[bytes] | None = None
    ) -> Watch:
        """Call ``callback(tid, oids)`` for every committed transaction seen.

        With *oids*, only for transactions that change one of them, and
        ``oids`` is then the changed subset.  Callbacks run on one dispatcher
        thread, in tid order.  Returns a handle; ``handle.close()`` stops it.
        """
        return self._watches.add(callback, oids)

    # -- life cycle -------------------------------------------------------------

    def _save_periodically(self, interval: float) -> None:
        while not self._saver_stop.wait(interval):
            self.cache.save()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._collect_iterators()
        self._io.close()
        self._watches.close()
        self._saver_stop.set()
        if self._saver is not None and self._saver is not threading.current_thread():
            self._saver.join(5)
        self.cache.close()

    def __repr__(self) -> str:
        return f"<ClientStorage {self._name!r} storage {self._storage_name!r}>"
