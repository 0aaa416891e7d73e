"""The storage mixins again, on a server storage with blobs.

ZEO runs its full generic suite on a ``<blobstorage>`` twice: with a
client blob cache that downloads blobs (non-shared) and with the client
writing into the server's blob directory (``shared_blob_dir``).  Blob
support changes the commit path (``storeBlob``/``storeBlobShared``), undo
and pack on the server, so the plain-object tests must hold there too.
"""

from ZODB.tests import (
    BasicStorage,
    ConflictResolution,
    IteratorStorage,
    MTStorage,
    PackableStorage,
    RevisionStorage,
    Synchronization,
    TransactionalUndoStorage,
)

from .base import ClientServerTestCase, PackUndoLogOnRealClock


class BlobStorageTests(
    PackUndoLogOnRealClock,
    ClientServerTestCase,
    BasicStorage.BasicStorage,
    PackableStorage.PackableStorageWithOptionalGC,
    PackableStorage.PackableUndoStorage,
    Synchronization.SynchronizedStorage,
    MTStorage.MTStorage,
    ConflictResolution.ConflictResolvingStorage,
    ConflictResolution.ConflictResolvingTransUndoStorage,
    RevisionStorage.RevisionStorage,
    TransactionalUndoStorage.TransactionalUndoStorage,
    IteratorStorage.IteratorStorage,
):
    """A blob storage, each client with a blob cache of its own."""

    storage_kind = "blob"


class SharedBlobStorageTests(BlobStorageTests):
    """A blob storage whose clients share the server's blob directory."""

    shared_blob_dir = True
