"""The StorageServer: the storages served and the state clients share.

One instance serves several named storages.  Per storage it keeps the
registered sessions, a :class:`~.lock.CommitLock`, an
:class:`~.invalidation.InvalidationQueue` and the statistics that
``server_status`` and ``ruok`` report.  It is driven from one event loop
(:mod:`.net`); :meth:`attach` gives it that loop.
"""

import logging
import time

from ZODB.POSException import ConflictError
from ZODB.serialize import referencesf

from ..protocol import encoder, frame
from .external import ExternalCommits, is_shared
from .invalidation import InvalidationQueue
from .lock import CommitLock
from .zeostorage import ZEOStorage

logger = logging.getLogger(__name__)


class StorageStats:
    """Counters of one storage, as ZEO's ``server_status`` names them."""

    __slots__ = (
        "loads",
        "stores",
        "commits",
        "aborts",
        "active_txns",
        "conflicts",
        "conflicts_resolved",
        "start",
    )

    def __init__(self):
        self.loads = self.stores = self.commits = self.aborts = 0
        self.active_txns = self.conflicts = self.conflicts_resolved = 0
        self.start = time.ctime()


def _never_resolve_conflict(
    oid, committed_serial, old_serial, new_pickle, committed_data=b""
):
    """Replaces a storage's resolver with client-conflict-resolution on."""
    raise ConflictError(
        oid=oid, serials=(committed_serial, old_serial), data=new_pickle
    )


def _disable_conflict_resolution(storage):
    """Make *storage*, and every storage a proxy wraps, refuse to resolve.

    Setting the attribute on a BlobStorage proxy does not reach the
    FileStorage inside, whose ``store`` is what calls the resolver.
    """
    while storage is not None:
        storage.tryToResolveConflict = _never_resolve_conflict
        # BlobStorage keeps the storage it wraps in a private attribute.
        storage = getattr(storage, "_BlobStorage__storage", None)


class StorageServerDB:
    """What the server registers with each storage (``registerDB``).

    A storage that learns of changes by itself (a ClientStorage fan-out, a
    replica) calls ``invalidate``; those calls may come from any thread.
    """

    def __init__(self, server, storage_id):
        self.server = server
        self.storage_id = storage_id
        self.references = referencesf

    def invalidate(self, tid, oids, version=""):
        self.server.call_soon_threadsafe(
            self.server.invalidate, None, self.storage_id, tid, list(oids)
        )

    def invalidateCache(self):
        self.server.call_soon_threadsafe(self.server.drop_clients, self.storage_id)

    def transform_record_data(self, data):
        return data

    untransform_record_data = transform_record_data


class StorageServer:
    """Serve *storages* (``{name: storage}``) to ZEO clients.

    Options mirror the ``<zeo>`` section: *read_only*,
    *invalidation_queue_size*, *invalidation_age*, *transaction_timeout*,
    *client_conflict_resolution*, *poll_interval* (seconds between polls of
    a storage other processes commit to, see :mod:`.external`),
    *size_info_interval* (seconds a shared storage's size info is reused) and
    *msgpack* (True: announce ``M5``).
    The defaults are those of ``zeo/server.xml`` (the schema is where they
    are decided; tests/zeo/server/test_schema_defaults.py keeps these equal).
    """

    def __init__(
        self,
        storages,
        read_only=False,
        invalidation_queue_size=100,
        invalidation_age=None,
        transaction_timeout=None,
        client_conflict_resolution=False,
        poll_interval=0.1,
        size_info_interval=5.0,
        msgpack=True,
    ):
        self.storages = dict(storages)
        self.read_only = bool(read_only)
        self.transaction_timeout = transaction_timeout
        self.client_conflict_resolution = bool(client_conflict_resolution)
        self.protocol = b"M5" if msgpack else b"Z5"
        self.encode = encoder(self.protocol, server=True)
        self.loop = None
        self.sessions = {}  # storage id -> {session: None}, in register order
        self.commit_locks = {}
        self.invalidation_queues = {}
        self.stats = {}
        self.external_commits = {}
        for name, storage in list(self.storages.items()):
            if is_shared(storage):
                # Serve an instance of its own, as a ZODB Connection would
                # use; the root one is kept to close (see .external).
                external = ExternalCommits(
                    self, name, storage, poll_interval, size_info_interval
                )
                self.external_commits[name] = external
                storage = self.storages[name] = external.served
            self.sessions[name] = {}
            self.commit_locks[name] = CommitLock(name, transaction_timeout)
            self.invalidation_queues[name] = InvalidationQueue(
                storage, invalidation_queue_size, invalidation_age
            )
            self.stats[name] = StorageStats()
            storage.registerDB(StorageServerDB(self, name))
            if client_conflict_resolution:
                _disable_conflict_resolution(storage)
        logger.info(
            "serving %s (%s, %s)",
            ", ".join(
                f"{name!r}: {storage.getName()}"
                f"{' (read-only)' if storage.isReadOnly() else ''}"
                for name, storage in self.storages.items()
            ),
            "read-only" if self.read_only else "read-write",
            "msgpack" if msgpack else "pickle",
        )

    def attach(self, loop):
        """Run on *loop*: timers and cross-thread calls go through it."""
        self.loop = loop
        for lock in self.commit_locks.values():
            lock._schedule = loop.call_later
        for external in self.external_commits.values():
            external.start(loop)

    def call_soon_threadsafe(self, callback, *args):
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(callback, *args)

    # -- sessions -------------------------------------------------------------

    def create_session(self, connection):
        return ZEOStorage(self, connection, self.read_only)

    def register(self, session):
        self.sessions[session.storage_id][session] = None

    def unregister(self, session):
        self.sessions[session.storage_id].pop(session, None)

    def drop_clients(self, storage_id):
        """The storage's data changed under us: make every client reverify."""
        self.invalidation_queues[storage_id].reset()
        for session in list(self.sessions[storage_id]):
            session.connection.close(None)

    # -- broadcasts -------------------------------------------------------------

    def invalidate(self, sender, storage_id, tid, oids):
        """Queue and send ``invalidateTransaction`` to all but *sender*."""
        self.invalidation_queues[storage_id].add(tid, oids)
        external = self.external_commits.get(storage_id)
        if external is not None:
            external.announced(tid)
        sessions = self.sessions[storage_id]
        if not sessions or (len(sessions) == 1 and sender in sessions):
            return
        # Encoded once for every client: they all speak our one encoding.
        message = frame(self.encode(0, True, "invalidateTransaction", (tid, oids)))
        # A copy: a client found not reading is closed, and unregistered,
        # while we iterate.
        for session in tuple(sessions):
            if session is not sender:
                session.connection.send_frame(message)

    def before_finish(self, storage_id):
        """A session voted on a shared storage and is about to finish."""
        external = self.external_commits.get(storage_id)
        if external is not None:
            external.before_finish()

    def after_finish(self, storage_id, tid=None, oids=()):
        """A session's finish or abort in the storage is done: on a shared
        storage, the served instance polls and the others' older commits
        are sent first."""
        external = self.external_commits.get(storage_id)
        if external is not None:
            external.after_transaction(tid, oids)

    def size_info(self, storage_id):
        """``{"length", "size"}`` of a storage, as sent after each commit."""
        external = self.external_commits.get(storage_id)
        if external is not None:
            return external.size_info()
        storage = self.storages[storage_id]
        return {"length": len(storage), "size": storage.getSize()}

    def broadcast_info(self, storage_id, info):
        message = frame(self.encode(0, True, "info", (info,)))
        for session in tuple(self.sessions[storage_id]):
            session.connection.send_frame(message)

    # -- status ------------------------------------------------------------------

    def server_status(self, storage_id):
        stats = self.stats[storage_id]
        lock = self.commit_locks[storage_id]
        status = {name: getattr(stats, name) for name in StorageStats.__slots__}
        status["connections"] = len(self.sessions[storage_id])
        status["lock_time"] = lock.locked_since
        status["waiting"] = len(lock.waiting)
        status["timeout-thread-is-alive"] = lock.timer_alive
        last = self.storages[storage_id].lastTransaction()
        status["last-transaction"] = last.hex()
        # Our additions.
        status["invalidation-queue-length"] = len(self.invalidation_queues[storage_id])
        status["encoding"] = "msgpack" if self.protocol[:1] == b"M" else "pickle"
        status["read-only"] = self.read_only
        external = self.external_commits.get(storage_id)
        if external is not None:
            status["external-polls"] = external.polls
            status["external-transactions"] = external.external_transactions
        return status

    def ruok(self):
        return {name: self.server_status(name) for name in self.storages}

    def close(self):
        """Close every storage (connections are closed by the acceptor)."""
        for name, storage in self.storages.items():
            logger.info("closing storage %r", name)
            external = self.external_commits.get(name)
            try:
                if external is not None:
                    external.close()
                    storage = external.root
                storage.close()
            except Exception:
                logger.exception("closing storage %r failed", name)
