"""Exceptions raised by zeo clients and servers.

Names follow ZEO's (``ZEO.Exceptions``) so application code that catches
``ClientDisconnected`` or ``ClientStorageError`` reads the same.
"""

import transaction.interfaces


class ClientStorageError(Exception):
    """An error occurred in the client storage."""


class UnrecognizedResult(ClientStorageError):
    """The server returned something the client does not understand."""


class ClientDisconnected(ClientStorageError, transaction.interfaces.TransientError):
    """The client is not connected to a server.

    It is a transient error: transaction managers retry, and calls made while
    the client reconnects wait up to ``wait_timeout`` before raising it.
    """


class AuthError(ClientStorageError):
    """The server refused our credentials (certificate)."""


class ProtocolError(ClientStorageError):
    """The peer broke the ZEO wire protocol.

    ``args[0]`` says what went wrong in words a log reader can act on.
    """


class ServerException(ClientStorageError):
    """The server raised an exception the client cannot rebuild.

    ``args`` is ``(dotted_class_name, args_or_dict)`` as it came on the wire.
    """


class CacheError(ClientStorageError):
    """The client cache cannot be used (locked, ahead of the server, ...)."""
