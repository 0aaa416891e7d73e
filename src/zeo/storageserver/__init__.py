"""The zeo storage server: serves ZODB storages to ZEO 5/6 clients.

:class:`StorageServer` holds the storages and their shared state (commit
locks, invalidation queues, statistics); :mod:`.net` runs it on one asyncio
loop; :func:`server` starts an ad-hoc server as ``ZEO.server`` does.  The
``runzeo`` command lives in :mod:`zeo.runzeo`.
"""

from .adhoc import server
from .server import StorageServer

__all__ = ["StorageServer", "server"]
