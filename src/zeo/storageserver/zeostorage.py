"""One client's session with one storage: every method of PROTOCOL.md section 4.

A :class:`ZEOStorage` knows nothing about sockets.  The connection that owns
it (:mod:`.net`) decodes a message, checks its arguments
(:mod:`.signatures`), sets :attr:`ZEOStorage.msgid` and calls the method of
the same name; a return value is the reply, an exception the error reply.
A method whose answer comes later returns :data:`DELAYED` and answers
through the connection itself (``vote`` waiting for the commit lock,
``pack``/``undoLog``/``undoInfo`` in a thread, ``sendBlob`` streaming).

The connection object provides ``label``, ``send_reply(msgid, value)``,
``send_error(msgid, exc)``, ``call_async(name, args)``,
``stream(messages, msgid)``, ``run_in_thread(msgid, function, *args)`` and
``close(reason)``.
"""

import itertools
import logging
import os
import tempfile

import zope.interface
from ZODB.POSException import ReadOnlyError, StorageTransactionError
from ZODB.utils import u64

from .packing import pack
from .transaction import DELAYED, CommitMixin

logger = logging.getLogger(__name__)


BLOB_CHUNK_SIZE = 59_000  # what ZEO clients and servers send

# What a client may call once registered (ZEO's list, where new_oid works).
REGISTERED_METHODS = frozenset(
    [
        "get_info",
        "lastTransaction",
        "getInvalidations",
        "new_oids",
        "new_oid",
        "pack",
        "loadBefore",
        "loadSerial",
        "getTid",
        "history",
        "record_iternext",
        "storea",
        "checkCurrentSerialInTransaction",
        "restorea",
        "deleteObject",
        "undoa",
        "storeBlobStart",
        "storeBlobChunk",
        "storeBlobEnd",
        "storeBlobShared",
        "sendBlob",
        "tpc_begin",
        "vote",
        "tpc_finish",
        "tpc_abort",
        "undoLog",
        "undoInfo",
        "iterator_start",
        "iterator_next",
        "iterator_record_start",
        "iterator_record_next",
        "iterator_gc",
        "server_status",
        "set_client_label",
        "ping",
    ]
)


class ZEOStorage(CommitMixin):
    """The server side of one client connection."""

    storage = None
    storage_id = None
    stats = None
    commit_lock = None
    msgid = None

    def __init__(self, server, connection, read_only=False):
        self.server = server
        self.connection = connection
        self.read_only = read_only
        self.label = connection.label
        self.connected = True
        self.client_conflict_resolution = server.client_conflict_resolution
        self._iterators = {}
        self._iterator_ids = itertools.count(1)
        self._last_transaction_info = {}
        self.init_transaction_state()

    def __repr__(self):
        return f"<ZEOStorage {self.label} storage={self.storage_id!r}>"

    # -- connection life ----------------------------------------------------

    def methods(self) -> dict:
        """Name -> bound method of what the client may call now."""
        if self.storage is None:
            return {"register": self.register}
        return {
            name: getattr(self, name)
            for name in REGISTERED_METHODS
            if getattr(self, name, None) is not None
        }

    def disconnected(self):
        """The connection is gone: abort its transaction, free its lock."""
        if not self.connected:
            return
        self.connected = False
        if self.transaction is not None:
            logger.info(
                "%s disconnected during a %s transaction",
                self.label,
                "locked" if self.locked else "unlocked",
            )
            self._abort_transaction()
        self._close_blob_tempfile()
        for iterator in self._iterators.values():
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
        self._iterators.clear()
        if self.storage is not None:
            self.server.unregister(self)

    def on_timeout(self):
        """The commit lock's timer fired while we held it: cut the client off
        (a stalled client may not read either, so unsent output is dropped)."""
        self.connection.close(None, discard_output=True)

    def log(self, message, level=logging.INFO):
        logger.log(level, "(%s) %s", self.label, message)

    # -- registration and information --------------------------------------

    def register(self, storage_id, read_only):
        if isinstance(storage_id, bytes):
            storage_id = storage_id.decode("ascii", "replace")
        storage = self.server.storages.get(storage_id)
        if storage is None:
            self.log(f"unknown storage {storage_id!r}", logging.WARNING)
            raise ValueError(f"unknown storage: {storage_id}")
        if not read_only and (self.server.read_only or storage.isReadOnly()):
            raise ReadOnlyError()
        self.read_only = bool(self.read_only or read_only or self.server.read_only)
        self.storage_id = storage_id
        self.storage = storage
        self.stats = self.server.stats[storage_id]
        self.commit_lock = self.server.commit_locks[storage_id]
        self.lastTransaction = storage.lastTransaction
        self.loadSerial = storage.loadSerial
        self.getTid = storage.getTid
        record_iternext = getattr(storage, "record_iternext", None)
        if record_iternext is not None:
            self.record_iternext = record_iternext
        if not self._supports_undo():
            self.undoLog = self.undoInfo = self._no_undo
        self.server.register(self)
        self.connection.registered()
        return storage.lastTransaction()

    record_iternext = None  # set in register when the storage has it

    def _supports_undo(self):
        supports_undo = getattr(self.storage, "supportsUndo", None)
        return bool(supports_undo and supports_undo())

    @staticmethod
    def _no_undo(*args):
        return ()

    def get_info(self):
        storage = self.storage
        interfaces = tuple(
            (interface.__module__, interface.__name__)
            for interface in zope.interface.providedBy(storage).__iro__
        )
        return {
            "length": len(storage),
            "size": storage.getSize(),
            "name": storage.getName(),
            "supportsUndo": self._supports_undo(),
            "supports_record_iternext": self.record_iternext is not None,
            "interfaces": interfaces,
        }

    def get_size_info(self):
        return self.server.size_info(self.storage_id)

    def server_status(self):
        return self.server.server_status(self.storage_id)

    def set_client_label(self, label):
        self.label = f"{label} {self.connection.label}"

    def ping(self):
        return None

    # -- reads ---------------------------------------------------------------

    def loadBefore(self, oid, tid):
        self.stats.loads += 1
        return self.storage.loadBefore(oid, tid)

    def history(self, oid, size=1):
        return self.storage.history(oid, size=size)

    def getInvalidations(self, tid):
        result = self.server.invalidation_queues[self.storage_id].since(tid)
        if result is not None:
            self.log(
                f"returning {len(result[1])} invalidations up to tid {u64(result[0])}",
                logging.DEBUG,
            )
        return result

    def new_oids(self, n=100):
        if self.read_only:
            raise ReadOnlyError()
        n = min(max(n, 1), 100)
        new_oid = self.storage.new_oid
        return [new_oid() for _ in range(n)]

    def new_oid(self):
        # ZEO registers new_oid but never implemented it; we do.
        if self.read_only:
            raise ReadOnlyError()
        return self.storage.new_oid()

    # -- slow methods, run in a thread ---------------------------------------

    def pack(self, time, wait=1, gc=None):
        """Pack as of *time*; ``gc=False`` (a zeopapa extension, a third
        argument real ZEO clients never send) packs without garbage
        collection where the storage supports it."""
        # Packing a read-only server is allowed, as in ZEO.
        if wait:
            self.connection.run_in_thread(self.msgid, self._pack, time, gc)
            return DELAYED
        self.connection.run_in_thread(None, self._pack, time, gc)
        return None

    def _pack(self, time, gc=None):
        self.log(f"pack(time={time!r}, gc={gc!r}) started")
        pack(self.storage, time, gc)
        self.log(f"pack(time={time!r}) complete")
        self.server.call_soon_threadsafe(
            self.server.broadcast_info, self.storage_id, self.get_size_info()
        )

    def undoLog(self, first=0, last=-20):
        self.connection.run_in_thread(self.msgid, self.storage.undoLog, first, last)
        return DELAYED

    def undoInfo(self, first=0, last=-20, specification=None):
        self.connection.run_in_thread(
            self.msgid, self.storage.undoInfo, first, last, specification
        )
        return DELAYED

    # -- iterators -------------------------------------------------------------

    def iterator_start(self, start=None, stop=None):
        iterator_id = next(self._iterator_ids)
        self._iterators[iterator_id] = iter(self.storage.iterator(start, stop))
        return iterator_id

    def _advance(self, iterator_id):
        """The next item of iterator *iterator_id*; None once it is done,
        when the iterator is forgotten."""
        try:
            return next(self._iterators[iterator_id])
        except StopIteration:
            del self._iterators[iterator_id]
            self._last_transaction_info.pop(iterator_id, None)
            return None

    def iterator_next(self, iterator_id):
        info = self._advance(iterator_id)
        if info is None:
            return None
        # A record iterator may be started on the transaction just returned.
        self._last_transaction_info[iterator_id] = info
        return (info.tid, info.status, info.user, info.description, info.extension)

    def iterator_record_start(self, transaction_iterator_id, tid):
        info = self._last_transaction_info.get(transaction_iterator_id)
        if info is None or info.tid != tid:
            raise ValueError(
                f"record iterator requested for tid {tid!r}, which is not the "
                "last transaction returned by that iterator"
            )
        iterator_id = next(self._iterator_ids)
        self._iterators[iterator_id] = iter(info)
        return iterator_id

    def iterator_record_next(self, iterator_id):
        record = self._advance(iterator_id)
        if record is None:
            return None
        return (record.oid, record.tid, record.data, record.data_txn)

    def iterator_gc(self, iterator_ids):
        for iterator_id in iterator_ids:
            iterator = self._iterators.pop(iterator_id, None)
            self._last_transaction_info.pop(iterator_id, None)
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    # -- blobs -------------------------------------------------------------------

    def storeBlobStart(self):
        self._close_blob_tempfile()
        self.blob_tempfile = tempfile.mkstemp(
            dir=self.storage.temporaryDirectory(), suffix=".upload"
        )

    def storeBlobChunk(self, chunk):
        if self.blob_tempfile is None:
            raise StorageTransactionError("storeBlobChunk without storeBlobStart")
        os.write(self.blob_tempfile[0], chunk)

    def storeBlobEnd(self, oid, serial, data, txn):
        self.check_transaction(txn)
        if self.blob_tempfile is None:
            raise StorageTransactionError("storeBlobEnd without storeBlobStart")
        descriptor, filename = self.blob_tempfile
        self.blob_tempfile = None
        os.close(descriptor)
        self.stats.stores += 1
        self.blob_log.append((oid, _serial_bytes(serial), data, filename))

    def storeBlobShared(self, oid, serial, data, filename, txn):
        self.check_transaction(txn)
        if isinstance(filename, bytes):
            filename = filename.decode("utf-8", "surrogateescape")
        if (
            os.path.sep in filename
            or (os.path.altsep and os.path.altsep in filename)
            or filename in ("", ".", "..")
            or not (filename.endswith(".tmp") or filename[:-1].endswith(".tmp"))
        ):
            logger.critical(
                "(%s) refused storeBlobShared file name %r: it must be a bare "
                "name ending in .tmp",
                self.label,
                filename,
            )
            raise ValueError(f"bad blob file name {filename!r}")
        directory = self.storage.fshelper.getPathForOID(oid)
        self.stats.stores += 1
        path = os.path.join(directory, filename)
        self.blob_log.append((oid, _serial_bytes(serial), data, path))

    def sendBlob(self, oid, serial):
        filename = self.storage.loadBlob(oid, serial)
        self.connection.stream(_blob_messages(oid, serial, filename), self.msgid)
        return DELAYED

    def _close_blob_tempfile(self):
        if self.blob_tempfile is not None:
            descriptor, filename = self.blob_tempfile
            self.blob_tempfile = None
            os.close(descriptor)
            _remove_quietly(filename)


def _serial_bytes(serial):
    """ZODB's blob doctests store a new blob with the str ``"\\0" * 8`` as
    its serial (which the signatures let through); FileStorage only compares
    it, RelStorage needs bytes (TypeError at vote)."""
    return serial.encode("latin-1") if isinstance(serial, str) else serial


def _blob_messages(oid, serial, filename):
    """The receiveBlob* callbacks that carry one blob file."""
    yield "receiveBlobStart", (oid, serial)
    with open(filename, "rb") as file:
        while True:
            chunk = file.read(BLOB_CHUNK_SIZE)
            if not chunk:
                break
            yield "receiveBlobChunk", (oid, serial, chunk)
    yield "receiveBlobStop", (oid, serial)


def _remove_quietly(filename):
    try:
        os.remove(filename)
    except OSError:
        pass
