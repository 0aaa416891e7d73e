"""``ClientStorage.watch``: be called back on committed transactions.

Services that must react to a change (a new job, a finished step) call
``storage.watch(callback, oids)`` instead of polling.  The I/O thread puts
``(tid, oids)`` of every transaction it applies (other clients' commits
from ``invalidateTransaction``, this client's own commits, and the changes
found by verification after a reconnect) on a queue; one dispatcher thread
calls the callbacks in tid order.  Callbacks therefore never run on the I/O
thread: a slow callback delays other callbacks, never the client's I/O.
"""

import logging
import queue
import threading

logger = logging.getLogger(__name__)

_STOP = object()


class Watch:
    """Handle returned by ``watch()``; ``close()`` (or ``unwatch()``) ends it."""

    def __init__(self, dispatcher, callback, oids):
        self._dispatcher = dispatcher
        self.callback = callback
        self.oids = None if oids is None else frozenset(oids)
        self.closed = False

    def close(self):
        self.closed = True
        self._dispatcher.remove(self)

    unwatch = close

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class WatchDispatcher:
    """The queue and the thread that call the watchers."""

    def __init__(self, name):
        self._name = name
        self._watches = []
        self._lock = threading.Lock()
        self._queue = queue.SimpleQueue()
        self._thread = None

    @property
    def active(self):
        return bool(self._watches)

    def add(self, callback, oids):
        watch = Watch(self, callback, oids)
        with self._lock:
            self._watches = self._watches + [watch]
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"zeo watch {self._name}", daemon=True
                )
                self._thread.start()
        return watch

    def remove(self, watch):
        with self._lock:
            self._watches = [w for w in self._watches if w is not watch]

    def notify(self, tid, oids):
        """Queue one transaction (called on the I/O thread, cheap)."""
        if self._watches:
            self._queue.put((tid, oids))

    def _run(self):
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            tid, oids = item
            for watch in self._watches:
                if watch.closed:
                    continue
                if watch.oids is None:
                    matching = list(oids)
                else:
                    matching = [oid for oid in oids if oid in watch.oids]
                    if not matching:
                        continue
                try:
                    watch.callback(tid, matching)
                except Exception:
                    logger.exception("watch callback %r failed", watch.callback)

    def close(self, timeout=5.0):
        with self._lock:
            self._watches = []
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            if thread is not threading.current_thread():
                thread.join(timeout)
