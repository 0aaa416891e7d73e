"""dispatch without runzeo: a ZODB database opened directly (RelStorage).

Wherever dispatch takes a zeo address (``--zeo``, ``$DISPATCH_ZEO``,
dispatch.conf's ``zeo`` key, passed on to the consumers and runners the
supervisor starts), ``zodb:PATH`` names instead a ZConfig file holding a
``<zodb>`` section (with ``%import relstorage`` and a ``<relstorage>`` in
it): every process opens the database itself, no server process.

Consumers and runners wait for commits with ``storage.watch()``, which a
zeo client storage has and RelStorage has not: here a thread polls a
RelStorage instance of its own every :data:`POLL_INTERVAL` seconds and
calls the watchers (zeo's :class:`~zeo.clientstorage.watch.WatchDispatcher`)
with the newest tid and the oids changed since the last poll.  A poll that
finds the database replaced (None) calls them with no oids: watchers of
given oids are not woken then.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from zeo.clientstorage.watch import WatchDispatcher

logger = logging.getLogger(__name__)

#: What starts a ``--zeo`` value that names a ``<zodb>`` configuration file.
PREFIX = "zodb:"
#: Seconds between polls for commits (the wake-up lag of a consumer).
POLL_INTERVAL = 0.05


def is_direct(target: str) -> bool:
    return target.startswith(PREFIX)


def open_direct(target: str) -> Any:
    """The ZODB DB of the ``<zodb>`` section in the file ``zodb:PATH`` names,
    its storage given a ``watch()`` when it has none.  ValueError (with the
    reason) for a file that is missing or not such a configuration."""
    import ZConfig
    import ZODB.config

    path = target[len(PREFIX) :]
    try:
        try:
            database = ZODB.config.databaseFromFile(open(path))
        except ZConfig.ConfigurationError as error:
            # A dispatch.conf with a <zodb> section (what the supervisor
            # hands its instances) rather than a file of its own.
            database = _from_dispatch_conf(path, error)
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None
    except ZConfig.ConfigurationError as error:
        raise ValueError(f"{path} is not a <zodb> configuration: {error}") from None
    except ValueError:
        raise
    except Exception as error:  # the storage's own: PostgreSQL refusing, say
        raise ValueError(
            f"cannot open the database of {path}: {type(error).__name__}: {error}"
        ) from None
    storage = database.storage
    if not hasattr(storage, "watch"):
        poller = CommitPoller(storage, POLL_INTERVAL)
        storage.watch = poller.watch
        close = database.close

        def close_all() -> None:
            poller.close()
            close()

        database.close = close_all
    return database


def _from_dispatch_conf(path: str, zodb_error: Exception) -> Any:
    """The database of the ``<zodb>`` section of dispatch.conf *path*;
    *zodb_error* (why it is no ``<zodb>`` file) when it is neither."""
    import ZConfig

    schema = os.path.join(os.path.dirname(__file__), "runtime", "supervise.xml")
    try:
        config, _ = ZConfig.loadConfig(ZConfig.loadSchema(schema), path)
    except ZConfig.ConfigurationError:
        raise zodb_error from None
    if config.zodb is None:
        raise ValueError(f"{path} has no <zodb> section")
    return config.zodb.open()


class CommitPoller:
    """``watch()`` for an MVCC storage (RelStorage) by polling an instance."""

    def __init__(self, storage: Any, interval: float) -> None:
        self.interval = interval
        self.instance = storage.new_instance()
        self.instance.poll_invalidations()
        self.dispatcher = WatchDispatcher(storage.getName())
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._run, name="dispatch commit poller", daemon=True
        )
        self._thread.start()

    def watch(self, callback, oids=None):
        """As zeo's ``watch()``: only commits made from now on.  A poll
        first hands what is committed already to the earlier watchers (a
        service's own commit just before, of the very oids it then watches,
        stopped it as if told to)."""
        with self._lock:
            self._poll()
            since = self.instance.lastTransaction()

        def newer(tid: bytes, changed: list[bytes]) -> object:
            # The dispatcher may still hold earlier transactions.
            return callback(tid, changed) if tid > since else None

        return self.dispatcher.add(newer, oids)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                self._poll()

    def _poll(self) -> None:
        try:
            before = self.instance.lastTransaction()
            oids = self.instance.poll_invalidations()
            tid = self.instance.lastTransaction()
        except Exception:
            # The database went away for a while: RelStorage reconnects.
            logger.exception("polling for commits failed")
            return
        if tid != before:
            self.dispatcher.notify(tid, list(oids or ()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.dispatcher.close()
        self.instance.release()
