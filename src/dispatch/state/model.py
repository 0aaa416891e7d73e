"""Runs, steps, messages, attempts and dead letters as persistent objects.

Zocalo keeps its state in broker messages; we keep it in zeo, so a run can be
inspected (which branches still run, which failed and why) and nothing is
lost when a process dies.  The layout is chosen so that concurrent producers
and consumers rarely conflict:

- every message is its own object, keyed by a unique time-ordered id, so two
  consumers of one queue touch different objects;
- the indexes that every transition writes (a queue's ready messages, a
  run's and a step's messages) are split into shards (see
  :mod:`dispatch.state.shards`): a message's id names its shard, the shard of the
  consumer that sent it, so consumers write to different BTrees;
- counters are ``BTrees.Length.Length`` (concurrent increments are summed);
- a run's status is derived from its counters and messages when read,
  instead of being written by whichever consumer finishes last.

The operations on these objects live in :mod:`dispatch.state.broker`.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from BTrees.Length import Length
from BTrees.OOBTree import OOBTree, OOTreeSet
from persistent import Persistent

from dispatch.state.runindex import RunIndex, RunOpenCount
from dispatch.state.shards import SHARDS, ShardedIndex, shard_of_id, shard_of_ready_key

logger = logging.getLogger(__name__)

ROOT_KEY = "dispatch"

# Message states, in life order.  "dead" is a dead letter.
PENDING = "pending"
IN_PROGRESS = "in progress"
DONE = "done"
DEAD = "dead"
CANCELLED_MESSAGE = "cancelled"
MESSAGE_STATES = (PENDING, IN_PROGRESS, DONE, DEAD, CANCELLED_MESSAGE)

# Run states, derived (see Run.status).
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
RUN_STATES = (RUNNING, SUCCEEDED, FAILED, CANCELLED)


def new_id(shard: int | None = None) -> str:
    """A unique id that sorts by creation time: 16 hex digits of
    nanoseconds, one for its *shard* (random if None; see
    :mod:`dispatch.state.shards`), then 7 random ones (so two machines never
    collide)."""
    if shard is None:
        shard = secrets.randbelow(SHARDS)
    return f"{time.time_ns():016x}{shard % SHARDS:x}{secrets.token_hex(4)[:7]}"


def _rename_legacy(state: Any, old: str, new: str) -> Any:
    """*state* with attribute *old* (a tree of the unsharded layout) moved
    to *new*; read by ``__setstate__`` of databases made before shards."""
    if isinstance(state, dict) and old in state:
        state = dict(state)
        state[new] = state.pop(old)
    return state


def tree_attribute(owner: Any, name: str, create: bool = True) -> Any:
    """The OOBTree at *owner*'s attribute *name*, made if missing and
    *create* (else None): an index added after databases were made."""
    found = getattr(owner, name, None)
    if found is None and create:
        found = OOBTree()
        setattr(owner, name, found)
    return found


def ready_key(not_before: float, message_id: str) -> str:
    """Key of a message in a queue's ``ready`` tree: it sorts by the time
    the message may be delivered, then by id (first in, first out)."""
    return f"{int(not_before * 1_000_000):017d}:{message_id}"


def ready_time(key: str) -> float:
    """The time (seconds since the epoch) in ready key *key*."""
    return int(key.partition(":")[0].rstrip(";")) / 1_000_000


def ready_bound(now: float) -> str:
    """The greatest ready key deliverable at *now* (``;`` sorts after ``:``)."""
    return f"{int(now * 1_000_000):017d};"


class Dispatch(Persistent):
    """The root of all dispatch state (``root["dispatch"]``)."""

    # Runs by state, recipe and start time (see dispatch.state.runindex);
    # None in databases made before it, until it is built.
    run_index: RunIndex | None = None
    # topic -> broadcast log (dispatch.state.topics); None until the first.
    topics: Any = None
    # topic -> durable subscriptions (dispatch.state.topics); None until one.
    subscriptions: Any = None

    def __init__(self) -> None:
        self.run_index = RunIndex(RUN_STATES)
        self.runs = OOBTree()  # run id -> Run
        self.queues = OOBTree()  # queue name -> Queue
        self.dead_letters = OOBTree()  # message id -> Message (state DEAD)
        self.dead_count = Length()
        self.instances = OOBTree()  # instance id -> ServiceInstance


class Queue(Persistent):
    """Messages waiting for, or being handled by, the consumers of one name.

    ``ready`` holds each message under :func:`ready_key` of the time it next
    needs attention (delivery of a pending one, lapse of a claimed one; see
    :func:`dispatch.state.broker.claim`), in the shard of its id;
    ``pending_count`` counts the pending.
    """

    ready_shards: Any = None  # shard -> OOBTree; None in databases before shards
    legacy_ready: Any = None  # the single tree of those databases, until emptied

    def __init__(self, name: str) -> None:
        self.name = name
        self.ready_shards = OOBTree()
        self.pending_count = Length()

    def __setstate__(self, state: Any) -> None:
        super().__setstate__(_rename_legacy(state, "ready", "legacy_ready"))

    @property
    def ready(self) -> ShardedIndex:
        """The ready index: ready key -> Message, over all shards."""
        return ShardedIndex(
            self, "ready_shards", "legacy_ready", OOBTree, shard_of_ready_key
        )

    def __repr__(self) -> str:
        return f"<Queue {self.name!r}>"


class Run(Persistent):
    """One execution of a recipe: what was asked and what became of it."""

    # The recipe's name (its file's, as ``dispatch go`` records it), or
    # None: runs started from a recipe text, or before names were recorded.
    name: str | None = None

    message_shards: Any = None  # None in databases made before shards
    legacy_messages: Any = None  # their single tree

    def __init__(
        self,
        run_id: str,
        recipe: dict[str, Any],
        parameters: dict[str, Any],
        environment: dict[str, Any],
        created: float,
        name: str | None = None,
    ) -> None:
        self.id = run_id
        self.name = name
        self.recipe = recipe  # JSON-ready dict, merged and substituted
        self.parameters = parameters
        self.environment = environment
        self.created = created
        self.cancelled: float | None = None  # time of `dispatch cancel`, or None
        self.steps = OOBTree()  # node id -> Step
        self.message_shards = OOBTree()  # shard -> OOBTree(message id -> Message)
        self.open_count = RunOpenCount()  # messages pending or in progress
        self.dead_count = Length()

    def __setstate__(self, state: Any) -> None:
        super().__setstate__(_rename_legacy(state, "messages", "legacy_messages"))

    @property
    def messages(self) -> ShardedIndex:
        """message id -> Message, over all shards, oldest first."""
        return ShardedIndex(
            self, "message_shards", "legacy_messages", OOBTree, shard_of_id
        )

    @property
    def status(self) -> str:
        """running, succeeded, failed (a dead letter) or cancelled."""
        if self.cancelled is not None:
            return CANCELLED
        if self.dead_count() > 0:
            return FAILED
        if self.open_count() > 0:
            return RUNNING
        return SUCCEEDED

    @property
    def finished(self) -> float | None:
        """When the last message finished, or None while the run is open."""
        if self.open_count() > 0:
            return self.cancelled
        times = [m.finished for m in self.messages.values() if m.finished]
        return max(times, default=self.created)

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.status}>"


class Step(Persistent):
    """One node of a run's recipe, with the ids of the messages sent to it."""

    message_id_shards: Any = None  # None in databases made before shards
    legacy_message_ids: Any = None  # their single set
    # A topic step's copies, once acknowledged, leave the run (so that
    # storage stays bounded); this counts them.  None for other steps.
    acknowledged_copies: Length | None = None

    def __init__(self, node: int, definition: dict[str, Any]) -> None:
        self.node = node
        self.definition = definition  # the recipe's step dict
        self.message_id_shards = OOBTree()  # shard -> OOTreeSet of ids
        if definition.get("topic"):
            self.acknowledged_copies = Length()

    @property
    def acknowledged(self) -> int:
        """How many copies for subscribers were acknowledged (and dropped)."""
        return self.acknowledged_copies() if self.acknowledged_copies else 0

    def __setstate__(self, state: Any) -> None:
        super().__setstate__(_rename_legacy(state, "message_ids", "legacy_message_ids"))

    @property
    def message_ids(self) -> ShardedIndex:
        """The ids of this step's messages, over all shards, oldest first."""
        return ShardedIndex(
            self, "message_id_shards", "legacy_message_ids", OOTreeSet, shard_of_id
        )

    def messages(self, run: Run) -> list[Message]:
        """This step's messages, oldest first."""
        return [run.messages[message_id] for message_id in self.message_ids]

    def status(self, run: Run) -> str:
        """waiting (no message yet), or the least finished message state
        (in progress < pending < dead < cancelled < done)."""
        states = {message.state for message in self.messages(run)}
        if not states:
            return DONE if self.acknowledged else "waiting"
        for state in (IN_PROGRESS, PENDING, DEAD, CANCELLED_MESSAGE):
            if state in states:
                return state
        return DONE


class Message(Persistent):
    """A payload addressed to one step of one run, like a zocalo
    recipe-wrapped message, plus its delivery history."""

    # Deliveries a stopping service handed back unfinished (GiveBack): they
    # do not count towards dead-lettering.  A class default, so messages
    # stored before it existed read 0.
    given_back = 0
    # The header a python-workflows sender gave (dispatch.state.transport).
    workflows_header: Any = None
    # The topic a subscription's copy was sent to (dispatch.state.topics).
    topic: str | None = None

    @property
    def counted_deliveries(self) -> int:
        """Deliveries that count towards ``max_deliveries`` and back-off."""
        return self.deliveries - self.given_back

    def __init__(
        self,
        message_id: str,
        run_id: str,
        node: int,
        queue: str,
        path: list[int],
        environment: dict[str, Any],
        payload: Any,
        created: float,
    ) -> None:
        self.id = message_id
        self.run_id = run_id
        self.node = node  # zocalo's recipe-pointer
        self.queue = queue
        self.path = path  # zocalo's recipe-path (nodes traversed, oldest first)
        self.environment = environment
        self.payload = payload
        self.created = created
        self.state = PENDING
        self.not_before = created  # earliest delivery (delay, back-off)
        self.queue_key: str | None = None  # its current key in the queue's ready tree
        self.deliveries = 0  # claims so far (see counted_deliveries)
        # {"host", "pid", "consumer"} while in progress
        self.claimed_by: dict[str, Any] | None = None
        self.lease_until: float | None = None
        self.finished: float | None = None
        self.reason: str | None = None  # why it was redelivered last, or dead-lettered
        self.attempts: list[
            Any
        ] = []  # Delivery (or, in older databases, Attempt), one each

    def __setstate__(self, state: Any) -> None:
        super().__setstate__(state)
        for attempt in self.attempts:
            if isinstance(attempt, Delivery):
                attempt.belong_to(self)

    def add_attempt(self, attempt: Delivery) -> None:
        """Record the start of a delivery (*attempt*, a :class:`Delivery`)."""
        attempt.belong_to(self)
        self.attempts = [*self.attempts, attempt]

    def __repr__(self) -> str:
        return f"<Message {self.id} run {self.run_id} step {self.node} {self.state}>"


class Delivery:
    """One delivery of a message: who handled it, where, how it ended.

    Kept inside its message's record rather than as an object of its own,
    so that a transition stores one object less, twice (the claim creates
    it, the outcome fills it in, and both write the message anyway).
    Setting an attribute marks the message changed, so code that updates
    ``message.attempts[-1]`` alone is still saved.  Databases made before
    hold :class:`Attempt` objects instead; both have the same attributes.
    """

    # A command step's program, as :mod:`dispatch.state.programs` records it
    # (a dict, replaced whole on change); None for other steps.  A class
    # default: deliveries stored before it existed read as None.
    program: dict[str, Any] | None = None
    # Set by _start_delivery, as in Attempt.
    number: int
    started: float
    host: str
    pid: int
    consumer: str
    slurm_job: str | None
    finished: float | None
    outcome: str | None
    exit_code: int | None
    error: str | None
    output_tail: str | None

    def __init__(
        self, number: int, started: float, host: str, pid: int, consumer: str
    ) -> None:
        _start_delivery(self, number, started, host, pid, consumer)

    def belong_to(self, message: Message) -> None:
        """Changes to this delivery now mark *message* changed."""
        self.__dict__["_message"] = message

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        message = self.__dict__.get("_message")
        if message is not None:
            message._p_changed = True

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_message", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"<Delivery {self.number} {self.outcome or 'running'}>"


class Attempt(Persistent):
    """One delivery of a message, as an object of its own: what databases
    made before :class:`Delivery` hold (and ``dispatch wrap`` still
    makes)."""

    program: dict[str, Any] | None = None  # as :attr:`Delivery.program`

    def __init__(
        self, number: int, started: float, host: str, pid: int, consumer: str
    ) -> None:
        _start_delivery(self, number, started, host, pid, consumer)

    def __repr__(self) -> str:
        return f"<Attempt {self.number} {self.outcome or 'running'}>"


class Heartbeat(Persistent):
    """When a service instance last said it was alive: an object of its
    own, so that beating neither wakes the instance (which watches its
    record for ``dispatch shutdown``) nor conflicts with anything else."""

    def __init__(self, time: float) -> None:
        self.time = time


class ServiceInstance(Persistent):
    """A running ``dispatch service`` process, so that ``dispatch shutdown``
    can ask it to stop: it watches this object and stops when
    ``stop_requested`` is set."""

    # Written every few seconds by the instance (None in records made
    # before heartbeats).
    heartbeat: Heartbeat | None = None

    def __init__(
        self,
        instance_id: str,
        service: str,
        queue: str,
        host: str,
        pid: int,
        started: float,
    ) -> None:
        self.id = instance_id
        self.service = service  # class name
        self.queue = queue
        self.host = host
        self.pid = pid
        self.started = started
        self.stop_requested: float | None = None  # time of the request
        self.stopped: float | None = None
        self.heartbeat = Heartbeat(started)

    def matches(self, name: str) -> bool:
        """True for its id, its service's name (any case) or ``host.pid``."""
        return name in (self.id, f"{self.host}.{self.pid}") or (
            name.lower() == self.service.lower()
        )

    def __repr__(self) -> str:
        return f"<ServiceInstance {self.service} pid {self.pid} on {self.host}>"


def _start_delivery(
    record: Delivery | Attempt,
    number: int,
    started: float,
    host: str,
    pid: int,
    consumer: str,
) -> None:
    """The fields of a new delivery record (:class:`Delivery`, or the
    :class:`Attempt` objects of older databases and ``dispatch wrap``)."""
    record.number = number
    record.started = started
    record.host = host
    record.pid = pid
    record.consumer = consumer
    record.slurm_job = None
    record.finished = None
    record.outcome = None  # done, error, lapsed, given back
    record.exit_code = None
    record.error = None
    record.output_tail = None
