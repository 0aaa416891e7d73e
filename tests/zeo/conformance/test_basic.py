"""BasicStorage (with ZODB's race tests), Synchronization, MTStorage,
ReadOnlyStorage and PersistentStorage against our client and server.

BasicStorage runs in both wire encodings: the server announces ``M5``
(msgpack, our default) or ``Z5`` (pickle, ``msgpack false``).
"""

from ZODB.tests import (
    BasicStorage,
    MTStorage,
    PersistentStorage,
    ReadOnlyStorage,
    Synchronization,
)

from .base import ClientServerTestCase


class BasicStorageTests(ClientServerTestCase, BasicStorage.BasicStorage):
    """ZODB's basic storage contract, racetest included, over msgpack."""

    server_options = {"msgpack": True}


class BasicStoragePickleTests(BasicStorageTests):
    """The same over the pickle encoding (``msgpack false``)."""

    server_options = {"msgpack": False}


class SynchronizationTests(ClientServerTestCase, Synchronization.SynchronizedStorage):
    """tpc_* calls out of order or with the wrong transaction."""


class MTStorageTests(ClientServerTestCase, MTStorage.MTStorage):
    """Several threads sharing one client, and ZODB connections on it."""


class ReadOnlyStorageTests(ClientServerTestCase, ReadOnlyStorage.ReadOnlyStorage):
    """A read-only client reads everything and refuses every write."""


class PersistentStorageTests(ClientServerTestCase, PersistentStorage.PersistentStorage):
    """What a closed client committed is there for the next one."""
