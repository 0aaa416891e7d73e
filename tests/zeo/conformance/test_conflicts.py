"""Conflict resolution on the server (the default) and on the client
(server option ``client-conflict-resolution true``)."""

from ZODB.tests import ConflictResolution

from .base import ClientServerTestCase


class ConflictResolutionTests(
    ClientServerTestCase, ConflictResolution.ConflictResolvingStorage
):
    """The server resolves conflicts (``_p_resolveConflict``).

    Conflict resolution on undo runs with the undo tests (its mixin needs
    TransactionalUndoStorage's helpers): see ``test_history.py``.
    """


class ClientConflictResolutionTests(
    ClientServerTestCase, ConflictResolution.ConflictResolvingStorage
):
    """The server reports conflicts and the client resolves them."""

    server_options = {"msgpack": True, "client_conflict_resolution": True}


class ClientConflictResolutionPickleTests(ClientConflictResolutionTests):
    """Client-side resolution over the pickle encoding: the conflict
    details the server sends back travel in pickle."""

    server_options = {"msgpack": False, "client_conflict_resolution": True}
