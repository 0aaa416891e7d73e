"""RecoveryStorage: copyTransactionsFrom/restore between two storages, both
served by our server, both reached through our client."""

from ZODB.tests import RecoveryStorage

from .base import ClientServerTestCase


class RecoveryStorageTests(ClientServerTestCase, RecoveryStorage.RecoveryStorage):
    """Copy every transaction of one storage into another and compare."""

    storages_per_test = 2

    def setUp(self):
        super().setUp()
        self._dst = self._open_client(self._storages[1])

    def new_dest(self):
        return self._open_client(self._storages[1])
