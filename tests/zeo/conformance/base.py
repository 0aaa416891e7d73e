"""The TestCase base every conformance class builds on.

ZODB's mixins (``ZODB.tests.BasicStorage`` and friends) expect a
``StorageTestBase`` whose ``self._storage`` is a fresh storage for every
test, plus three hooks that client-server storages provide:

- ``_new_storage_client()``: another client of the same storage (the race
  tests open many);
- ``open(read_only=False)``: reopen ``self._storage`` (ReadOnlyStorage and
  PersistentStorage close it and expect it back, maybe read-only);
- ``_dst``/``new_dest()`` for RecoveryStorage (a second storage).

One server process per class (see ``StoragePool``) serves a fresh
FileStorage to each test; each test connects fresh clients with empty
caches, and every client it opened is closed in ``tearDown``.
"""

from __future__ import annotations

import os
import tempfile
import unittest

from ZODB.tests import PackableStorage, StorageTestBase

from . import server as harness

#: ZEO's own test-suite waits this long for a server; calls that wait for a
#: reconnect should never need it on loopback.
CLIENT_WAIT_TIMEOUT = 60

#: A server per class serves at most this many storages (a FileStorage keeps
#: a few descriptors open each).
MAXIMUM_STORAGES_PER_SERVER = 48
#: A RelStorage holds three PostgreSQL connections or more in the server.
MAXIMUM_RELSTORAGES_PER_SERVER = 16


class ClientServerTestCase(StorageTestBase.StorageTestBase):
    """A StorageTestBase whose ``_storage`` is a client of a server process."""

    #: ``<zeo>`` options of the server (``_`` for ``-``).
    server_options: dict = {"msgpack": True}
    #: "file" or "blob" (a FileStorage inside a ``<blobstorage>``, or a
    #: RelStorage with a ``blob-dir``).
    storage_kind = "file"
    #: "file" or "relstorage"; None: the run's (``--storage``).
    storage_backend: str | None = None
    #: Clients use the server's blob directory directly (blob kind only);
    #: a RelStorage then keeps its blobs there (``shared-blob-dir``), else
    #: in the database with its blob directory as a cache.
    shared_blob_dir = False
    #: The FileStorage's ``pack-gc`` option.
    pack_gc = True
    #: Storages one test takes from the pool (RecoveryStorage needs two).
    storages_per_test = 1

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        tests = unittest.TestLoader().getTestCaseNames(cls)
        size = min(len(tests) * cls.storages_per_test, MAXIMUM_STORAGES_PER_SERVER)
        backend = cls.storage_backend or harness.STORAGE
        if backend == "relstorage":
            size = min(size, MAXIMUM_RELSTORAGES_PER_SERVER)
        cls._pool = harness.StoragePool(
            cls.__name__,
            size,
            kind=cls.storage_kind,
            pack_gc=cls.pack_gc,
            backend=backend,
            shared_blobs=cls.shared_blob_dir,
            **cls.server_options,
        )

    @classmethod
    def tearDownClass(cls):
        cls._pool.close()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self._clients = []
        self._server, self._storages = self._pool.acquire(self.storages_per_test)
        self._storage = self._open_client()

    def _open_client(self, storage=None, **options):
        """A new client of ``storage`` (the test's first by default)."""
        spec = storage or self._storages[0]
        options.setdefault("wait_timeout", CLIENT_WAIT_TIMEOUT)
        if spec.kind == "blob":
            if self.shared_blob_dir:
                options.setdefault("blob_dir", str(spec.blob_dir))
                options.setdefault("shared_blob_dir", True)
            else:
                # Every client gets a blob cache of its own, in the test's
                # temporary directory (the current one: see ZODB's setUp).
                options.setdefault(
                    "blob_dir", tempfile.mkdtemp(prefix="blob-cache-", dir=os.getcwd())
                )
        client = harness.make_client(self._server.address, spec.name, **options)
        self._clients.append(client)
        return client

    def _new_storage_client(self):
        return self._open_client()

    def open(self, read_only=False, **options):
        self._storage.close()
        self._storage = self._open_client(read_only=read_only, **options)

    def tearDown(self):
        try:
            for client in reversed(self._clients):
                client.close()
            super().tearDown()
        finally:
            self._check_server_alive()

    def _check_server_alive(self):
        if not self._server.is_alive():
            raise AssertionError(
                f"the server died during the test (exit code "
                f"{self._server.process.returncode}); log:\n{self._server.log_tail()}"
            )


class PackUndoLogOnRealClock:
    """PackableUndoStorage.testPackUndoLog without ZODB's fake clock.

    ZODB decorates that test to fake a clock that jumps ahead on every
    ``time.time()`` call; the server runs on the real clock, so the pack
    time the test computes can lie in the server's future.  Run the
    undecorated test, on the real clock on both sides.
    """

    def testPackUndoLog(self):
        PackableStorage.PackableUndoStorage.testPackUndoLog.__wrapped__(self)
