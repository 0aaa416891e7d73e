"""TransactionalUndo, Revision, History, Iterator and ExtendedIterator
storage tests against our client and server."""

from ZODB.tests import (
    ConflictResolution,
    HistoryStorage,
    IteratorStorage,
    RevisionStorage,
    TransactionalUndoStorage,
)

from .base import ClientServerTestCase


class TransactionalUndoTests(
    ClientServerTestCase,
    TransactionalUndoStorage.TransactionalUndoStorage,
    ConflictResolution.ConflictResolvingTransUndoStorage,
):
    """undo, undoLog, undoInfo, undo interleaved with pack, and undo that
    needs conflict resolution."""


class RevisionStorageTests(ClientServerTestCase, RevisionStorage.RevisionStorage):
    """loadSerial and loadBefore (the MVCC reads) over the wire."""


class HistoryStorageTests(ClientServerTestCase, HistoryStorage.HistoryStorage):
    """history() of an object."""


class IteratorStorageTests(
    ClientServerTestCase,
    IteratorStorage.IteratorStorage,
    IteratorStorage.ExtendedIteratorStorage,
):
    """iterator() and its start/stop ranges, served by the server's
    iterator methods."""


class TransactionalUndoPickleTests(TransactionalUndoTests):
    """Undo over the pickle encoding: undoLog/undoInfo return dicts whose
    values travel differently in msgpack and pickle."""

    server_options = {"msgpack": False}


class IteratorStoragePickleTests(IteratorStorageTests):
    """Iteration over the pickle encoding (transaction metadata and
    extensions are bytes on one wire and may not be on the other)."""

    server_options = {"msgpack": False}
