"""zeo: a client-server object database for ZODB, wire-compatible with ZEO 5/6.

The public face:

- :func:`server` starts an ad-hoc server (for tests, scripts and the demo);
  production servers run ``runzeo -C conf/zeo.conf``.
- :func:`client` returns a :class:`ClientStorage`; :func:`DB` and
  :func:`connection` wrap it in a ZODB database or an open connection.
- ``%import zeo`` in a ZODB config makes ``<clientstorage>`` available.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported lazily at run time (see __getattr__)
    import ZODB
    import ZODB.Connection

    from .clientstorage.storage import ClientStorage
    from .storageserver.adhoc import server

__all__ = ["DB", "ClientStorage", "client", "connection", "server"]


def client(*args: Any, **kw: Any) -> ClientStorage:
    """Return a :class:`ClientStorage` connected to the server at *addr*."""
    from .clientstorage.api import client as make

    return make(*args, **kw)


def DB(*args: Any, **kw: Any) -> ZODB.DB:
    """Return a ``ZODB.DB`` on a :class:`ClientStorage` (same arguments)."""
    from .clientstorage.api import DB as make

    return make(*args, **kw)


def connection(*args: Any, **kw: Any) -> ZODB.Connection.Connection:
    """Return an open connection of a new :func:`DB` (closed with the DB)."""
    from .clientstorage.api import connection as make

    return make(*args, **kw)


def __getattr__(name: str) -> object:
    # Imported lazily so that `import zeo` stays cheap for servers and tools.
    if name == "ClientStorage":
        from .clientstorage.storage import ClientStorage

        return ClientStorage
    if name == "server":
        # The ad-hoc server itself, not a wrapper repeating its signature.
        from .storageserver.adhoc import server

        return server
    raise AttributeError(f"module 'zeo' has no attribute {name!r}")
