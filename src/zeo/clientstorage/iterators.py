"""Server-side iterators seen from the client (IStorageIteration).

The server keeps the iteration state; the client holds an iterator id and
pulls one transaction (``iterator_next``) or record
(``iterator_record_next``) per round trip.  Iterators dropped before they
are exhausted are reported with one-way ``iterator_gc`` so the server can
free them; after a reconnect the server has forgotten them all, and using
one raises :class:`ClientDisconnected`.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import ZODB.BaseStorage

from ..exceptions import ClientDisconnected

if TYPE_CHECKING:
    from .storage import ClientStorage

ItemType = TypeVar("ItemType")
IteratorType = TypeVar("IteratorType", bound="_ServerIterator[Any]")


class IteratorRegistry:
    """Iterator ids this client holds, and the ones to garbage-collect."""

    def __init__(self) -> None:
        self._live: weakref.WeakValueDictionary[int, _ServerIterator[Any]] = (
            weakref.WeakValueDictionary()
        )
        self._ids: set[int] = set()

    def add(self, iid: int, iterator: IteratorType) -> IteratorType:
        self._live[iid] = iterator
        self._ids.add(iid)
        return iterator

    def forget(self, iid: int) -> None:
        self._live.pop(iid, None)
        self._ids.discard(iid)

    def collectable(self) -> set[int]:
        """Ids whose iterator objects are gone; they are forgotten here."""
        dead = self._ids - set(self._live.keys())
        self._ids -= dead
        return dead

    def disconnected(self) -> None:
        for iterator in list(self._live.values()):
            iterator.iid = None
        self._live = weakref.WeakValueDictionary()
        self._ids.clear()


class _ServerIterator(Generic[ItemType]):
    """Pulls items one call at a time from an iterator held by the server.

    Subclasses name the server method (``next_method``) and turn what it
    returns into an item (``_item``); ``None`` from the server ends it.
    """

    next_method = ""

    def __init__(self, storage: ClientStorage, iid: int) -> None:
        self._storage = storage
        self.iid: int | None = iid
        self._ended = False

    def __iter__(self) -> Iterator[ItemType]:
        return self

    def __next__(self) -> ItemType:
        if self._ended:
            raise StopIteration
        if self.iid is None:
            raise ClientDisconnected("the connection was lost during iteration")
        data = self._storage._io.call(self.next_method, self.iid)
        if data is None:
            self._ended = True
            self._storage._iterators.forget(self.iid)
            raise StopIteration
        return self._item(data)

    def _item(self, data: Any) -> ItemType:
        raise NotImplementedError


class TransactionIterator(_ServerIterator["TransactionRecord"]):
    """Iterates over transaction records held by the server."""

    next_method = "iterator_next"

    def _item(self, data: tuple[Any, ...]) -> TransactionRecord:
        return TransactionRecord(self._storage, self, *data)

    def close(self) -> None:
        if not self._ended and self.iid is not None:
            self._ended = True
            self._storage._iterators.forget(self.iid)
            self._storage._send_iterator_gc([self.iid])


class TransactionRecord(ZODB.BaseStorage.TransactionRecord):
    """One transaction; iterating it pulls its data records."""

    def __init__(
        self,
        storage: ClientStorage,
        transactions: TransactionIterator,
        tid: bytes,
        status: str,
        user: bytes,
        description: bytes,
        ext: Any,  # a dict (pickled bytes from old servers)
    ) -> None:
        if isinstance(ext, (bytes, bytearray)):
            from ZODB.utils import loads_extension  # pragma: no cover

            ext = loads_extension(ext)  # pragma: no cover
        super().__init__(tid, status, user, description, dict(ext or {}))
        self._storage = storage
        self._transactions = transactions

    def __iter__(self) -> RecordIterator:
        if self._transactions.iid is None:
            raise ClientDisconnected("the connection was lost during iteration")
        riid = self._storage._io.call(
            "iterator_record_start", self._transactions.iid, self.tid
        )
        return self._storage._iterators.add(riid, RecordIterator(self._storage, riid))


class RecordIterator(_ServerIterator[Any]):  # ZODB DataRecords
    """Data records of one transaction."""

    next_method = "iterator_record_next"

    def _item(self, data: tuple[Any, ...]) -> Any:  # a ZODB DataRecord
        return ZODB.BaseStorage.DataRecord(*data)
