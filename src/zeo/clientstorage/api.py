"""ZEO's convenience API: ``client()``, ``DB()``, ``connection()``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .storage import ClientStorage

if TYPE_CHECKING:
    import ZODB
    import ZODB.Connection


def client(*args: Any, **kw: Any) -> ClientStorage:
    """Return a :class:`ClientStorage`; same arguments."""
    return ClientStorage(*args, **kw)


def DB(*args: Any, **kw: Any) -> ZODB.DB:
    """Return a ``ZODB.DB`` over a new :class:`ClientStorage`.

    Positional and keyword arguments go to :class:`ClientStorage`; ZODB
    ``DB`` options can be given as ``db_options={...}``.
    """
    import ZODB

    db_options = kw.pop("db_options", None) or {}
    storage = ClientStorage(*args, **kw)
    try:
        return ZODB.DB(storage, **db_options)
    except BaseException:
        storage.close()
        raise


def connection(*args: Any, **kw: Any) -> ZODB.Connection.Connection:
    """Open a connection to a new ``DB(*args, **kw)``; closing the
    connection closes the database too."""
    db = DB(*args, **kw)
    conn = db.open()
    conn.onCloseCallback(db.close)
    return conn
