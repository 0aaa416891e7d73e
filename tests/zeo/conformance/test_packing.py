"""PackableStorage (with and without GC) and PackableUndoStorage against our
client and server."""

from ZODB.tests import PackableStorage

from .base import ClientServerTestCase, PackUndoLogOnRealClock


class PackableStorageTests(
    ClientServerTestCase, PackableStorage.PackableStorageWithOptionalGC
):
    """pack with garbage collection, and ``pack(..., gc=False)``."""


class PackableUndoStorageTests(
    PackUndoLogOnRealClock, ClientServerTestCase, PackableStorage.PackableUndoStorage
):
    """pack and the undo log."""
