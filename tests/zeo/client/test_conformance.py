"""ZODB's storage conformance mixins run against our ClientStorage.

Each test gets a fresh server process (FileStorage in a temporary
directory) from ``tests.zeo.client.conftest.Server``: real ZEO 6.2 by
default (``ZEOPAPA_CLIENT_CONFORMANCE_SERVER=zeopapa`` for ours), so that
these prove the client; ``tests/zeo/conformance`` covers our server.
"""

import os
import shutil
import tempfile

import pytest
from ZODB.tests import (
    BasicStorage,
    ConflictResolution,
    HistoryStorage,
    IteratorStorage,
    MTStorage,
    PackableStorage,
    PersistentStorage,
    ReadOnlyStorage,
    RevisionStorage,
    StorageTestBase,
    Synchronization,
    TransactionalUndoStorage,
)

from tests.zeo.client.conftest import Server
from zeo.clientstorage import ClientStorage

pytestmark = pytest.mark.slow

CONFORMANCE_SERVER = os.environ.get("ZEOPAPA_CLIENT_CONFORMANCE_SERVER", "zeo")


class ServerTestBase(StorageTestBase.StorageTestBase):
    msgpack = True

    def setUp(self):
        super().setUp()
        self._directory = tempfile.mkdtemp(prefix="zeo-conformance-")
        self._server = Server(
            CONFORMANCE_SERVER, self._directory, msgpack=self.msgpack
        ).start()
        self._storage = self.open_client()

    def open_client(self, **kw):
        kw.setdefault("wait_timeout", 30)
        return ClientStorage(self._server.addr, **kw)

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            self._server.stop()
            shutil.rmtree(self._directory, ignore_errors=True)

    # racetest: several clients of the same server race loads and commits
    def _new_storage_client(self):
        return self.open_client()

    # ReadOnlyStorage
    def _make_readonly(self):
        self._storage.close()
        self._storage = self.open_client(read_only=True)

    # PersistentStorage
    def open(self, **kw):
        self._storage = self.open_client(**kw)


class GenericTests(
    ServerTestBase,
    BasicStorage.BasicStorage,
    Synchronization.SynchronizedStorage,
    MTStorage.MTStorage,
    ReadOnlyStorage.ReadOnlyStorage,
    PersistentStorage.PersistentStorage,
    RevisionStorage.RevisionStorage,
    HistoryStorage.HistoryStorage,
    IteratorStorage.IteratorStorage,
    IteratorStorage.ExtendedIteratorStorage,
    TransactionalUndoStorage.TransactionalUndoStorage,
    ConflictResolution.ConflictResolvingStorage,
    ConflictResolution.ConflictResolvingTransUndoStorage,
    PackableStorage.PackableStorage,
    PackableStorage.PackableUndoStorage,
):
    def testPackUndoLog(self):
        # The mixin fakes time.time/sleep, which cannot reach the server
        # process; run the undecorated test (as ZEO's own suite does).
        PackableStorage.PackableUndoStorage.testPackUndoLog.__wrapped__(self)


class PickleTests(
    ServerTestBase,
    BasicStorage.BasicStorage,
    RevisionStorage.RevisionStorage,
    IteratorStorage.IteratorStorage,
):
    msgpack = False


class ServerManagingClientStorage(ClientStorage):
    """A ClientStorage that owns its server (the doctest only closes it)."""

    def __init__(self, **storage_options):
        self._directory = tempfile.mkdtemp(prefix="zeo-external-gc-")
        self._server = Server(
            CONFORMANCE_SERVER,
            self._directory,
            msgpack=True,
            blobs=True,
            storage_lines=["pack-gc false"],
        ).start()
        super().__init__(
            self._server.addr,
            blob_dir=f"{self._directory}/blob-cache",
            wait_timeout=30,
            **storage_options,
        )

    def close(self):
        try:
            super().close()
        finally:
            self._server.stop()
            shutil.rmtree(self._directory, ignore_errors=True)


def test_iexternalgc_doctest():
    import unittest

    suite = PackableStorage.IExternalGC_suite(ServerManagingClientStorage)
    result = unittest.TextTestRunner(verbosity=0).run(suite)
    assert result.wasSuccessful(), result.failures + result.errors
