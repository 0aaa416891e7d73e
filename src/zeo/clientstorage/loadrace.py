"""The load race check: is a "current" load reply already stale?

A cache miss is answered on the I/O thread, and a server may answer loads
out of order with invalidations: an object can be invalidated between the
request and the reply.  :class:`InvalidationLog` remembers the recent
invalidations (numbered in the order they were applied) so that such a
reply is returned to the caller but not cached as current.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .cache import ClientCache

# How many recent invalidations the load race check remembers; a load whose
# reply takes longer than this many transactions is not cached as current.
INVALIDATION_LOG_SIZE = 512

# A revision as loadBefore returns it: (data, start tid, end tid or None).
LoadBeforeResult = tuple[bytes, bytes, bytes | None]
LoadHook = Callable[[LoadBeforeResult | None], LoadBeforeResult | None]


class InvalidationLog:
    """The last invalidations applied, each with its sequence number."""

    def __init__(self, size: int = INVALIDATION_LOG_SIZE) -> None:
        self.sequence = 0
        self._entries: collections.deque[tuple[int, bytes, frozenset[bytes]]] = (
            collections.deque(maxlen=size)
        )

    def note(self, tid: bytes, oids: Iterable[bytes]) -> None:
        """*tid* changed *oids* (called before the cache learns of it)."""
        self.sequence += 1
        self._entries.append((self.sequence, tid, frozenset(oids)))

    def forget(self) -> None:
        """The cache was dropped: no reply requested before now is cached."""
        self.sequence += 1
        self._entries.clear()

    def cache_hook(self, cache: ClientCache, oid: bytes) -> LoadHook:
        """A reply hook (run on the I/O thread) that caches a ``loadBefore``
        reply for *oid* unless it is already stale."""
        sequence = self.sequence

        def loaded(result: LoadBeforeResult | None) -> LoadBeforeResult | None:
            if result is not None:
                data, start, end = result
                if end is not None or not self.invalidated_since(oid, start, sequence):
                    cache.store(oid, start, end, data)
            return result

        return loaded

    def invalidated_since(self, oid: bytes, start: bytes, sequence: int) -> bool:
        """Was *oid* changed after *start* by a transaction applied since
        *sequence*?  Then a "current" reply is already stale."""
        if sequence == self.sequence:
            return False
        log = self._entries
        if not log or log[0][0] > sequence + 1:
            return True  # the window is not fully remembered: be safe
        for entry_sequence, tid, oids in reversed(log):
            if entry_sequence <= sequence:
                return False
            if tid > start and oid in oids:
                return True
        return False
