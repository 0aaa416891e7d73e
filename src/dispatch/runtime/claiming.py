"""How a consumer of a shared queue claims, so that consumers stop racing.

Claiming changes the message object, so two consumers that reach for the
same message conflict and one of them aborts.  A :class:`Claimer` keeps
what one consumer learnt from its races: alone, it takes the oldest due
message (first in, first out); once it has lost a race it claims from its
home shard (see :mod:`dispatch.state.shards`) first for a while, looking
at the others now and then (stealing from them if they hold much older
messages), and spreads a retried claim over the first few due messages; a
claim that conflicts again in the home shard moves it to another one.
:class:`~dispatch.runtime.consumer.Consumer` and the workflows ``zeo``
transport both claim through one.
"""

from __future__ import annotations

import collections
import random
import time

from dispatch.state import broker, model, shards

# After a conflict a consumer claims from its home shard first (FIFO to
# within broker.CLAIM_SLACK) for this many seconds; alone, it keeps strict
# first-in first-out order.
CONTENTION_MEMORY = 10.0
# A contended consumer with messages in its home shard looks at the other
# shards (stealing from them if they hold much older messages) this often.
GLANCE_INTERVAL = 0.25


class Claimer:
    """Claims of consumer *name* on *queue* (broker.claim's settings)."""

    def __init__(
        self,
        queue: str,
        name: str,
        lease: float = broker.DEFAULT_LEASE,
        max_deliveries: int = broker.MAX_DELIVERIES,
        backoff_base: float = broker.BACKOFF_BASE,
    ) -> None:
        self.queue = queue
        self.name = name
        self.lease = lease
        self.max_deliveries = max_deliveries
        self.backoff_base = backoff_base
        self.shard = random.randrange(shards.SHARDS)
        self._contended_until = 0.0
        self._next_glance = 0.0
        # ConflictErrors by phase (claim, complete, release), for benchmarks
        # and logs: how often this consumer lost a race.
        self.conflicts: collections.Counter[str] = collections.Counter()

    def conflicted(self, phase: str, move: bool = True) -> None:
        """Count a ConflictError in *phase*; remember the contention and,
        if *move*, go to another home shard (another consumer may share it)."""
        self.conflicts[phase] += 1
        self._contended_until = time.monotonic() + CONTENTION_MEMORY
        if move:
            self.shard = (
                self.shard + random.randrange(1, shards.SHARDS)
            ) % shards.SHARDS

    def claim_conflicted(self, message_ids: list[str]) -> None:
        """Count a claim conflict (of the messages *message_ids*); move home
        if it was all in the home shard."""
        self.conflicted(
            "claim",
            move=all(shards.shard_of_id(i) == self.shard for i in message_ids),
        )

    def claim_some(
        self,
        dispatch: model.Dispatch,
        now: float,
        limit: int,
        retry: int = 0,
        steal: bool = True,
    ) -> list[model.Message]:
        """Claim up to *limit* messages in the open transaction (no commit);
        returns them.  *retry* counts the tries of this claim that conflicted;
        without *steal*, a contended consumer claims from its home shard only
        (see :func:`dispatch.state.broker.claim`)."""
        clock = time.monotonic()
        contended = clock < self._contended_until
        glance = clock >= self._next_glance
        if glance:
            self._next_glance = clock + GLANCE_INTERVAL
        messages: list[model.Message] = []
        while len(messages) < limit:
            message = broker.claim(
                dispatch,
                self.queue,
                self.name,
                self.lease,
                now,
                max_deliveries=self.max_deliveries,
                backoff_base=self.backoff_base,
                spread=broker.CLAIM_SPREAD if retry else 1,
                home=self.shard if contended else None,
                steal=steal,
                glance=glance,
            )
            if message is None:
                break
            messages.append(message)
        return messages
