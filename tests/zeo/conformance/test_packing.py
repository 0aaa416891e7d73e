"""PackableStorage (with and without GC) and PackableUndoStorage against our
client and server."""

from ZODB.tests import PackableStorage

from .base import ClientServerTestCase


class PackableStorageTests(
    ClientServerTestCase, PackableStorage.PackableStorageWithOptionalGC
):
    """pack with garbage collection, and ``pack(..., gc=False)``."""


class PackableUndoStorageTests(
    ClientServerTestCase, PackableStorage.PackableUndoStorage
):
    """pack and the undo log."""

    def testPackUndoLog(self):
        # ZODB decorates this test to fake a clock that jumps ahead on every
        # time.time() call; the server runs on the real clock, so the pack
        # time the test computes can lie in the server's future.  Run the
        # undecorated test, on the real clock on both sides.
        PackableStorage.PackableUndoStorage.testPackUndoLog.__wrapped__(self)
