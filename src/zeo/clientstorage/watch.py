"""``ClientStorage.watch``: be called back on committed transactions.

Services that must react to a change (a new job, a finished step) call
``storage.watch(callback, oids)`` instead of polling.  The I/O thread puts
``(tid, oids)`` of every transaction it applies (other clients' commits
from ``invalidateTransaction``, this client's own commits, and the changes
found by verification after a reconnect) on a queue; one dispatcher thread
calls the callbacks in tid order.  Callbacks therefore never run on the I/O
thread: a slow callback delays other callbacks, never the client's I/O.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import cast

logger = logging.getLogger(__name__)

_STOP = object()

# ``callback(tid, oids)``; what it returns is ignored.
WatchCallback = Callable[[bytes, list[bytes]], object]


class Watch:
    """Handle returned by ``watch()``; ``close()`` (or ``unwatch()``) ends it."""

    def __init__(
        self,
        dispatcher: WatchDispatcher,
        callback: WatchCallback,
        oids: Iterable[bytes] | None,
    ) -> None:
        self._dispatcher = dispatcher
        self.callback = callback
        self.oids = None if oids is None else frozenset(oids)
        self.closed = False

    def close(self) -> None:
        self.closed = True
        self._dispatcher.remove(self)

    unwatch = close

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class WatchDispatcher:
    """The queue and the thread that call the watchers."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._watches: list[Watch] = []
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        return bool(self._watches)

    def add(self, callback: WatchCallback, oids: Iterable[bytes] | None) -> Watch:
        watch = Watch(self, callback, oids)
        with self._lock:
            self._watches = self._watches + [watch]
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"zeo watch {self._name}", daemon=True
                )
                self._thread.start()
        return watch

    def remove(self, watch: Watch) -> None:
        with self._lock:
            self._watches = [w for w in self._watches if w is not watch]

    def notify(self, tid: bytes, oids: Sequence[bytes]) -> None:
        """Queue one transaction (called on the I/O thread, cheap)."""
        if self._watches:
            self._queue.put((tid, oids))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            tid, oids = cast(tuple[bytes, Sequence[bytes]], item)
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

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._watches = []
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            if thread is not threading.current_thread():
                thread.join(timeout)
