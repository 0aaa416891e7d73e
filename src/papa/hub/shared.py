"""Servers kept in zeo, so that several hubs agree on them.

Each hub has its own database; without more, two hubs behind one address
would each submit a job for the same user.  With ``zeo_state`` set, every
server is also recorded in zeo under ``root["papa.hub.servers"]`` (a BTree
of ``"USER/SERVER"`` → record): which papa kernel runs it, the process name,
the Slurm job id and, once it listens, its address.  A hub about to start a
server first *claims* the key in a transaction of its own: of two hubs
claiming at once, one commit wins and the other sees the winner's record and
waits for its address instead of submitting a second job; a hub asked about
a server it did not start finds it there (``poll``, ``stop``).

Records are plain dicts (a record is replaced whole, never changed in
place), so the stored state is JSON-like and small.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import transaction
from BTrees.OOBTree import OOBTree
from ZODB.POSException import ConflictError

log = logging.getLogger(__name__)

ROOT_KEY = "papa.hub.servers"
# A claim older than this with no address is taken for a hub that died
# while starting (the start timeout of the spawner that made it, plus slack).
STALE_CLAIM_SECONDS = 600.0


class Claimed(Exception):
    """Another hub holds this server's key; ``record`` is what it wrote."""

    def __init__(self, record: dict[str, Any]):
        super().__init__(f"server claimed by {record.get('hub')}")
        self.record = record


class SharedServers:
    """The servers' records in the zeo database at *address*."""

    def __init__(self, address: Any, hub: str | None = None):
        import zeo

        self.database = zeo.DB(address, wait_timeout=30)
        self.hub = hub or socket.getfqdn()

    def close(self) -> None:
        self.database.close()

    def _run(self, work: Any) -> Any:
        manager = transaction.TransactionManager()
        connection = self.database.open(transaction_manager=manager)
        try:
            manager.begin()
            root = connection.root()
            if ROOT_KEY not in root:
                root[ROOT_KEY] = OOBTree()
            result = work(root[ROOT_KEY])
            manager.commit()
            return result
        except BaseException:
            manager.abort()
            raise
        finally:
            connection.close()

    def get(self, key: str) -> dict[str, Any] | None:
        """The record of *key* (``USER/SERVER``), as committed now."""
        found = self._run(lambda servers: servers.get(key))
        return dict(found) if found is not None else None

    def claim(self, key: str, record: dict[str, Any]) -> None:
        """Record that this hub starts *key*; :class:`Claimed` when another
        hub's live claim or server is there."""

        def work(servers: OOBTree) -> None:
            found = servers.get(key)
            if found is not None and not _stale(found):
                raise Claimed(dict(found))
            servers[key] = dict(record, hub=self.hub, claimed=time.time())

        try:
            self._run(work)
        except ConflictError:
            # Another hub committed a claim of this key (or near it) first.
            found = self.get(key)
            if found is None:
                raise
            raise Claimed(found) from None

    def update(self, key: str, **changes: Any) -> None:
        """Replace *key*'s record with *changes* applied."""

        def work(servers: OOBTree) -> None:
            servers[key] = dict(servers.get(key) or {}, **changes)

        self._run(work)

    def forget(self, key: str) -> None:
        """Remove *key*'s record (the server stopped)."""

        def work(servers: OOBTree) -> None:
            if key in servers:
                del servers[key]

        self._run(work)


def _stale(record: dict[str, Any]) -> bool:
    if record.get("port"):
        return False
    return time.time() - float(record.get("claimed", 0)) > STALE_CLAIM_SECONDS
