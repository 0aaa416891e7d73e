"""Indexes split into per-writer shards, so that concurrent writers do not
conflict on every commit.

A BTree resolves concurrent changes to one bucket only in easy cases: it
gives up when a change deletes a bucket's first key, empties a bucket or
splits one (the split changes the parent node, which never resolves).  A
queue whose consumers all pop the oldest keys and append the newest, or an
index of time-ordered ids that every producer appends to, hits those cases
on nearly every commit once several processes share it.

So each such index is a small mapping of shard number to BTree (or
TreeSet), and a message lives in the shard named by its id (see
:func:`dispatch.state.model.new_id`): a consumer makes the ids of the messages it
sends in its own shard, so its commits touch its own trees.  The shard
trees are created on first use; their container holds at most
:data:`SHARDS` keys, so it stays one bucket, whose concurrent inserts of
different keys resolve.

:class:`ShardedIndex` is the mapping view over the shards that the rest of
the code uses like the single BTree it replaces.  Databases written before
the split keep their old tree as the *legacy* shard: it is read, and
emptied as its entries are taken or deleted, but never added to.
"""

from __future__ import annotations

import heapq
import logging
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from BTrees.OOBTree import OOBTree

logger = logging.getLogger(__name__)

# Shards per index.  More than the consumers that share a queue, so that
# each can have its own; one hex digit of a message id names it.
SHARDS = 16


def shard_of_id(message_id: Any) -> int:
    """The shard of *message_id*: its 17th character, a hex digit that
    :func:`dispatch.state.model.new_id` sets; any other id is hashed."""
    try:
        return int(message_id[16], 16) % SHARDS
    except (IndexError, TypeError, ValueError):
        return zlib.crc32(str(message_id).encode()) % SHARDS


def shard_of_ready_key(key: str) -> int:
    """The shard of a queue's ready key (``time:message-id``)."""
    return shard_of_id(key.partition(":")[2])


_MISSING = object()


class ShardedIndex:
    """A mapping (or, with ``add``, a set) spread over per-shard trees.

    Not persistent itself: a view over ``owner.<shards_attribute>`` (shard
    number -> tree, created on first write) and ``owner.<legacy_attribute>``
    (the tree of a database written before shards, or None).  Iteration
    merges the trees, so keys come in order as from one tree.
    """

    def __init__(
        self,
        owner: Any,
        shards_attribute: str,
        legacy_attribute: str,
        factory: Callable[[], Any],
        shard_of: Callable[[Any], int],
    ) -> None:
        self._owner = owner
        self._shards_attribute = shards_attribute
        self._legacy_attribute = legacy_attribute
        self._factory = factory
        self._shard_of = shard_of

    # -- the trees ------------------------------------------------------------

    @property
    def shards(self) -> Any:
        """``{shard: tree}`` as stored (None before the first write)."""
        return getattr(self._owner, self._shards_attribute, None)

    @property
    def legacy(self) -> Any:
        """The tree of a database written before shards, or None."""
        return getattr(self._owner, self._legacy_attribute, None)

    def trees(self) -> list[Any]:
        """Every non-empty tree: the legacy one first, then by shard."""
        found = []
        legacy = self.legacy
        if legacy:
            found.append(legacy)
        shards = self.shards
        if shards is not None:
            found.extend(tree for tree in shards.values() if tree)
        return found

    def numbered_trees(self) -> list[tuple[int, Any]]:
        """``(shard, tree)`` for every tree; the legacy tree as shard -1."""
        found = []
        legacy = self.legacy
        if legacy is not None:
            found.append((-1, legacy))
        shards = self.shards
        if shards is not None:
            found.extend(shards.items())
        return found

    def shard(self, number: int, create: bool = False) -> Any:
        """The tree of shard *number*; created (and its container) if
        *create*, else None when it does not exist yet."""
        shards = self.shards
        if shards is None:
            if not create:
                return None
            shards = OOBTree()
            setattr(self._owner, self._shards_attribute, shards)
        tree = shards.get(number)
        if tree is None and create:
            tree = shards[number] = self._factory()
        return tree

    def _holder(self, key: Any) -> Any:
        """The tree that holds *key*, or None."""
        tree = self.shard(self._shard_of(key))
        if tree is not None and key in tree:
            return tree
        legacy = self.legacy
        if legacy is not None and key in legacy:
            return legacy
        return None

    def _drop_legacy_if_empty(self, tree: Any) -> None:
        if tree is self.legacy and not tree:
            setattr(self._owner, self._legacy_attribute, None)
            logger.info("%r: the last unsharded entry is gone", self._owner)

    # -- mapping and set operations --------------------------------------------

    def get(self, key: Any, default: Any = None) -> Any:
        tree = self._holder(key)
        return default if tree is None else tree.get(key, default)

    def __getitem__(self, key: Any) -> Any:
        tree = self._holder(key)
        if tree is None:
            raise KeyError(key)
        return tree[key]

    def __contains__(self, key: Any) -> bool:
        return self._holder(key) is not None

    def __setitem__(self, key: Any, value: Any) -> None:
        tree = self._holder(key) or self.shard(self._shard_of(key), create=True)
        tree[key] = value

    def add(self, key: Any) -> None:
        """Set semantics (the trees are TreeSets): add *key*."""
        if self._holder(key) is None:
            self.shard(self._shard_of(key), create=True).add(key)

    def __delitem__(self, key: Any) -> None:
        tree = self._holder(key)
        if tree is None:
            raise KeyError(key)
        del tree[key]
        self._drop_legacy_if_empty(tree)

    def remove(self, key: Any) -> None:
        """Set semantics: remove *key* (KeyError if absent)."""
        tree = self._holder(key)
        if tree is None:
            raise KeyError(key)
        tree.remove(key)
        self._drop_legacy_if_empty(tree)

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        tree = self._holder(key)
        if tree is None:
            if default is _MISSING:
                raise KeyError(key)
            return default
        value = tree.pop(key)
        self._drop_legacy_if_empty(tree)
        return value

    def __len__(self) -> int:
        return sum(len(tree) for tree in self.trees())

    def __bool__(self) -> bool:
        return bool(self.trees())

    def keys(self, min: Any = None, max: Any = None) -> Iterator[Any]:  # noqa: A002
        """Keys of every tree in order, within [*min*, *max*]."""
        return heapq.merge(*(tree.keys(min, max) for tree in self.trees()))

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys())

    def items(
        self,
        min: Any = None,  # noqa: A002 (BTrees' names)
        max: Any = None,  # noqa: A002
    ) -> Iterator[tuple[Any, Any]]:
        return heapq.merge(
            *(tree.items(min, max) for tree in self.trees()), key=lambda item: item[0]
        )

    def values(
        self,
        min: Any = None,  # noqa: A002
        max: Any = None,  # noqa: A002
    ) -> Iterator[Any]:
        return (value for _key, value in self.items(min, max))

    def minKey(self) -> Any:  # noqa: N802 (BTrees' name)
        """The smallest key of all trees (ValueError when empty)."""
        trees = self.trees()
        if not trees:
            raise ValueError("empty index")
        return min(tree.minKey() for tree in trees)

    def __repr__(self) -> str:
        return f"<ShardedIndex of {self._owner!r} ({len(self.trees())} tree(s))>"
