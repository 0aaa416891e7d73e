"""The zeo client: :class:`ClientStorage`, its cache, and ZEO's convenience API.

Named ``clientstorage`` (not ``client``) so that the function
``zeo.client()`` is not shadowed by a subpackage of the same name.
"""

from .api import DB, client, connection
from .cache import ClientCache
from .storage import ClientStorage

__all__ = ["DB", "ClientCache", "ClientStorage", "client", "connection"]
