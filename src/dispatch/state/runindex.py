"""Indexes of runs by state, by recipe name and by start time, and counters
per state, per transition and of dead letters per queue, so that the runs list, its filters and
``/metrics`` read a few buckets instead of every run.

Each index is kept in the transaction of the state change it records
(:func:`note` is called by every operation that can change a run's
status).  A run's status is derived from its counters
(:attr:`dispatch.state.model.Run.status`), and the change that matters
most, the last open message finishing, is made by consumers that decrement
a shared counter: two consumers finishing a run's last two messages at once
would each see one message still open, and neither would move the run to
*succeeded*.  So a run's open counter is a :class:`RunOpenCount`, whose
conflict resolution refuses to merge concurrent changes that reach zero:
one of the two commits fails, is retried, and sees the zero itself.

The key sets are sharded like the other indexes (see
:mod:`dispatch.state.shards`; a run id names its shard), so that runs
started and finished by different processes rarely touch one tree.  Keys
are :func:`created_key` (start time, then run id), so each set sorts by
start time and an age filter is a key range.

Databases made before this module have no index: :func:`build` makes it
from a scan, once, in a transaction of its own (see
:func:`dispatch.state.database.ensure_run_index`); until then readers fall
back to the scan and say so in the log.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterator
from typing import Any

from BTrees.Length import Length
from BTrees.OOBTree import OOBTree, OOTreeSet
from persistent import Persistent
from ZODB.POSException import ConflictError

from dispatch.state.shards import ShardedIndex, shard_of_id

logger = logging.getLogger(__name__)

# What a run was before it was indexed (the "from" of its first transition).
NEW = "new"
# Keys of a key set are read in slices of this many, newest first.
SLICE = 256


class RunOpenCount(Length):
    """A run's count of open messages: a ``Length`` whose concurrent
    changes merge, except into zero (see the module's docstring)."""

    def _p_resolveConflict(self, old: int, committed: int, new: int) -> int:
        merged = int(committed + new - old)
        if merged <= 0:
            raise ConflictError("the run's last open messages finished at once")
        return merged


def created_key(created: float, run_id: str) -> str:
    """The key of a run in the key sets: its start time in microseconds,
    then its id, so keys sort by start time."""
    return f"{int(created * 1_000_000):017d}:{run_id}"


def since_key(since: float) -> str:
    """The smallest key of a run started at *since* or later."""
    return f"{int(since * 1_000_000):017d}:"


def run_of_key(key: str) -> str:
    """The run id in :func:`created_key` *key*."""
    return key.partition(":")[2]


def _shard_of_key(key: str) -> int:
    return shard_of_id(run_of_key(key))


class KeySet(Persistent):
    """A sharded set of :func:`created_key` keys and its size (a Length,
    so concurrent adds and removes count right)."""

    shards: Any = None
    legacy: Any = None  # no unsharded layout ever existed

    def __init__(self) -> None:
        self.shards = OOBTree()
        self.count = Length()

    @property
    def keys(self) -> ShardedIndex:
        return ShardedIndex(self, "shards", "legacy", OOTreeSet, _shard_of_key)

    def add(self, key: str) -> None:
        self.keys.add(key)
        self.count.change(1)

    def discard(self, key: str) -> None:
        if key in self.keys:
            self.keys.remove(key)
            self.count.change(-1)

    def newest_first(self, since: str | None = None) -> Iterator[str]:
        """Keys greatest (newest) first, down to *since* (a key) if given."""
        return newest_first(self.keys, since)


def _tree_newest_first(tree: Any, since: str | None) -> Iterator[str]:
    keys = tree.keys(since) if since is not None else tree.keys()
    end = len(keys)
    while end > 0:
        start = max(0, end - SLICE)
        yield from reversed(list(keys[start:end]))
        end = start


def newest_first(index: ShardedIndex, since: str | None = None) -> Iterator[str]:
    """The keys of *index* over all its shards, greatest first."""
    return heapq.merge(
        *(_tree_newest_first(tree, since) for tree in index.trees()), reverse=True
    )


class RunIndex(Persistent):
    """``dispatch.run_index``: key sets of every run, of the runs in each
    state and of each recipe name; each run's indexed state; counters of
    transitions between states."""

    state_of_shards: Any = None
    legacy_state_of: Any = None  # no unsharded layout ever existed

    def __init__(self, states: tuple[str, ...]) -> None:
        self.every = KeySet()
        self.states = OOBTree({state: KeySet() for state in states})
        self.recipes = OOBTree()  # recipe name -> KeySet
        self.recipe_states = OOBTree()  # (recipe name, state) -> KeySet
        self.state_of_shards = OOBTree()  # shard -> OOBTree(run id -> state)
        self.transitions = OOBTree()  # "from>to" -> Length
        self.dead_by_queue = OOBTree()  # queue -> Length of its dead letters

    @property
    def state_of(self) -> ShardedIndex:
        """run id -> the state the index files it under."""
        return ShardedIndex(
            self, "state_of_shards", "legacy_state_of", OOBTree, shard_of_id
        )

    def transition_counts(self) -> dict[tuple[str, str], int]:
        """``{(from, to): count}`` of the transitions recorded."""
        found = {}
        for name, counter in self.transitions.items():
            before, _, after = name.partition(">")
            found[(before, after)] = counter()
        return found

    def recipe_names(self) -> list[str]:
        return list(self.recipes.keys())

    def recipe_in_state(self, name: str, state: str, create: bool = False) -> Any:
        """The key set of the runs of recipe *name* in *state* (None if
        there never was one, unless *create*)."""
        found = self.recipe_states.get((name, state))
        if found is None and create:
            found = self.recipe_states[(name, state)] = KeySet()
        return found

    def dead_letter_counts(self) -> dict[str, int]:
        """``{queue: dead letters in the index}``, queues with none left out."""
        counts = {queue: counter() for queue, counter in self.dead_by_queue.items()}
        return {queue: count for queue, count in counts.items() if count}


def count_dead_letter(dispatch: Any, queue: str, change: int) -> None:
    """A dead letter of *queue* entered (+1) or left (-1) the index."""
    index = index_of(dispatch)
    if index is None:
        return
    counter = index.dead_by_queue.get(queue)
    if counter is None:
        counter = index.dead_by_queue[queue] = Length()
    counter.change(change)


def index_of(dispatch: Any) -> RunIndex | None:
    """*dispatch*'s run index, or None in a database not indexed yet."""
    return getattr(dispatch, "run_index", None)


def note(dispatch: Any, run: Any) -> None:
    """File *run* under its current status, if that changed (called in the
    transaction of every change that may change it)."""
    index = index_of(dispatch)
    if index is None:
        return
    _file(index, run)


def _file(index: RunIndex, run: Any) -> None:
    status = run.status
    state_of = index.state_of
    before = state_of.get(run.id)
    if before == status:
        return
    key = created_key(run.created, run.id)
    name = getattr(run, "name", None)
    if before is None:
        index.every.add(key)
        if name:
            recipe = index.recipes.get(name)
            if recipe is None:
                recipe = index.recipes[name] = KeySet()
            recipe.add(key)
    else:
        index.states[before].discard(key)
        if name:
            index.recipe_in_state(name, before, create=True).discard(key)
    index.states[status].add(key)
    if name:
        index.recipe_in_state(name, status, create=True).add(key)
    state_of[run.id] = status
    transition = f"{before or NEW}>{status}"
    counter = index.transitions.get(transition)
    if counter is None:
        counter = index.transitions[transition] = Length()
    counter.change(1)


def build(dispatch: Any, states: tuple[str, ...]) -> RunIndex:
    """Make *dispatch*'s run index from a scan of every run (a database
    made before indexes), and give open runs a :class:`RunOpenCount`."""
    index = RunIndex(states)
    runs = 0
    for run in dispatch.runs.values():
        if run.open_count() > 0 and not isinstance(run.open_count, RunOpenCount):
            run.open_count = RunOpenCount(run.open_count())
        _file(index, run)
        runs += 1
    for message in dispatch.dead_letters.values():
        counter = index.dead_by_queue.get(message.queue)
        if counter is None:
            counter = index.dead_by_queue[message.queue] = Length()
        counter.change(1)
    dispatch.run_index = index
    logger.warning("indexed %d run(s) of a database made before run indexes", runs)
    return index
