"""The commit lock of one storage, with delayed vote replies and a timeout.

Only one client at a time may be between ``vote`` and ``tpc_finish`` /
``tpc_abort`` on a storage.  A client that votes while another holds the
lock is queued (first come, first served); its ``vote`` reply is sent when
the lock is handed to it.  Everything here runs on the server's loop thread,
so no thread lock is needed.
"""

import collections
import logging
import time

logger = logging.getLogger(__name__)

# ZEO warns at these queue lengths; a long queue means commits are slower
# than they arrive (a slow disk, or a client that votes and then stalls).
WAITING_WARNING = 3
WAITING_CRITICAL = 9


class CommitLock:
    """Per-storage commit lock.

    *schedule(delay, callback)* arms a timer and returns an object with a
    ``cancel()`` method (``loop.call_later`` does); with a *timeout* the
    holder's *on_timeout()* is called when it keeps the lock that long.
    """

    def __init__(self, storage_id, timeout=None, schedule=None):
        self.storage_id = storage_id
        self.timeout = timeout
        self._schedule = schedule
        self.holder = None
        self.locked_since = None  # epoch seconds while held
        self.waiting = collections.OrderedDict()  # session -> granted callback
        self._timer = None
        self._granting = False

    def try_acquire(self, session) -> bool:
        """Take the lock now if it is free (or already ours)."""
        if self.holder is session:
            return True
        if self.holder is None and not self.waiting:
            self._set_holder(session)
            return True
        return False

    def enqueue(self, session, granted):
        """Call *granted()* once *session* holds the lock."""
        self.waiting[session] = granted
        count = len(self.waiting)
        if count > WAITING_CRITICAL:
            level = logging.CRITICAL
        elif count > WAITING_WARNING:
            level = logging.WARNING
        else:
            level = logging.DEBUG
        logger.log(
            level,
            "storage %r: %s queued for the commit lock; %d transaction(s) waiting",
            self.storage_id,
            session.label,
            count,
        )

    def release(self, session):
        """Give the lock up (or leave the queue) and hand it to the next."""
        if self.holder is not session:
            self.waiting.pop(session, None)
            return
        self._set_holder(None)
        if self._granting:
            return  # the loop below continues with the next waiter
        self._granting = True
        try:
            while self.holder is None and self.waiting:
                next_session, granted = self.waiting.popitem(last=False)
                self._set_holder(next_session)
                granted()
        finally:
            self._granting = False

    def _set_holder(self, session):
        self.holder = session
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if session is None:
            self.locked_since = None
            return
        self.locked_since = time.time()
        if self.timeout and self._schedule is not None:
            self._timer = self._schedule(self.timeout, self._expired, session)

    def _expired(self, session):
        self._timer = None
        if self.holder is not session:
            return
        logger.critical(
            "storage %r: transaction timeout after %s seconds; closing %s",
            self.storage_id,
            self.timeout,
            session.label,
        )
        session.on_timeout()

    @property
    def timer_alive(self):
        """As ZEO's ``timeout-thread-is-alive``: 'stub' without a timeout."""
        return "stub" if not self.timeout else True
