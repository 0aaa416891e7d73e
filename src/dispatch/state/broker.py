"""Operations on dispatch state: start a run, claim, finish or release a
message, dead-letter it.  Each function changes objects of one open ZODB
connection and leaves the commit to the caller, so that consuming a message
and producing the next ones are one transaction (zocalo's ack + send).

Delivery is at least once, like a broker's, but a message is only *finished*
once: a consumer first claims it (a short transaction that changes the
message object, so two claimers conflict and one retries), then handles it
and commits the outcome together with the messages it sends.  A consumer
that dies leaves a claim that lapses (lease expired, or its local process
gone) and the message is delivered again with back-off; after
``max_deliveries`` deliveries it becomes a dead letter with the reason.
"""

from __future__ import annotations

import copy
import itertools
import logging
import os
import random
import socket
import time
from collections.abc import Mapping
from typing import Any

from BTrees.Length import Length

from dispatch.state import model, runindex, shards
from dispatch.state.recipe import Recipe
from dispatch.state.sending import RECIPE_HEADER as RECIPE_HEADER
from dispatch.state.sending import destination_queue as destination_queue
from dispatch.state.sending import enqueue as enqueue
from dispatch.state.sending import enqueue_all as enqueue_all
from dispatch.state.sending import put_in_queue as put_in_queue
from dispatch.state.sending import queue_named as queue_named

# Where the messages of steps that run a program wait: the command step
# kind's queue, named here too as it always was.
from dispatch.state.steps import COMMAND_QUEUE as COMMAND_QUEUE
from dispatch.state.wrapper import RecipeWrapper

logger = logging.getLogger(__name__)

# Zocalo sites run RabbitMQ with the policy delivery-limit: 5.
MAX_DELIVERIES = 5
# A claim lapses after this long without being finished or renewed; long,
# because a lapse means the work may be done twice.  Tests pass shorter.
DEFAULT_LEASE = 300.0
# Back-off before redelivery: BACKOFF_BASE * 2**(deliveries - 1), capped.
BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0
HOST = socket.gethostname()
# How many of the first due messages a claim chooses from after losing a
# race for the first one (see claim()).
CLAIM_SPREAD = 8
# A consumer that lost races lately takes from its own shard a message up
# to this many seconds younger than the queue's oldest due one (see claim()).
CLAIM_SLACK = 1.0


class Reject(Exception):
    """Raised by a handler for a message that can never be handled (a
    malformed request): it becomes a dead letter at once, with this
    exception's text as the reason, instead of being delivered again."""


class GiveBack(Exception):
    """Raised by a handler that stops before finishing its message through no
    fault of the message (its service is stopping, a program it follows is
    left running for the next consumer).  The message is queued again at
    once and this delivery does not count towards ``max_deliveries``."""


# What a handler sent, as recorded by the wrapper: (node, payload, path, delay).
Send = tuple[int, Any, list[int], float]


def get_dispatch(root: Any) -> model.Dispatch:
    """The :class:`~dispatch.state.model.Dispatch` in connection *root*, created
    if missing (the caller commits)."""
    dispatch = root.get(model.ROOT_KEY)
    if dispatch is None:
        dispatch = root[model.ROOT_KEY] = model.Dispatch()
    return dispatch


def backoff_delay(
    deliveries: int, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP
) -> float:
    """Seconds to wait before delivery number ``deliveries + 1``."""
    if deliveries <= 0 or base <= 0:
        return 0.0
    return min(cap, base * 2 ** (deliveries - 1))


def start_run(
    dispatch: model.Dispatch,
    recipe: Recipe | str | bytes | Mapping[str, Any],
    parameters: Mapping[str, Any] | None = None,
    now: float | None = None,
    name: str | None = None,
) -> model.Run:
    """Create a run of *recipe* (a :class:`Recipe` or its JSON/dict) and its
    start messages, as zocalo's Dispatcher does; returns the run.  *name*
    is the recipe's (what the runs list filters on).

    ``guid`` is the run id unless *parameters* give one; it is put into the
    parameters before substitution so recipes can use ``{guid}``.
    """
    now = time.time() if now is None else now
    values = dict(parameters or {})
    given = Recipe(recipe)
    given.validate()
    run_id = str(values.get("guid") or model.new_id())
    if run_id in dispatch.runs:
        raise ValueError(f"run {run_id} exists already; choose another guid")
    values["guid"] = run_id
    substituted = given.apply_parameters(values)
    substituted.validate()
    environment = {"ID": run_id}
    run = model.Run(run_id, substituted.to_dict(), values, environment, now, name)
    for node, definition in substituted.steps.items():
        run.steps[node] = model.Step(node, copy.deepcopy(definition))
    dispatch.runs[run_id] = run
    # Start messages go round the shards, so that consumers find them in
    # their own (a fan-out of thousands is shared out without conflicts).
    first_shard = random.randrange(shards.SHARDS)
    for number, (node, payload) in enumerate(substituted.start):
        shard = (first_shard + number) % shards.SHARDS
        enqueue_all(dispatch, run, node, payload, [], environment, now=now, shard=shard)
    runindex.note(dispatch, run)
    logger.info("run %s started: %d step(s)", run_id, len(run.steps))
    return run


def claim(
    dispatch: model.Dispatch,
    queue_name: str,
    consumer: str,
    lease: float = DEFAULT_LEASE,
    now: float | None = None,
    pid: int | None = None,
    max_deliveries: int = MAX_DELIVERIES,
    backoff_base: float = BACKOFF_BASE,
    spread: int = 1,
    home: int | None = None,
    slack: float = CLAIM_SLACK,
    steal: bool = True,
    glance: bool = True,
) -> model.Message | None:
    """Take the first deliverable message of *queue_name* for *consumer*;
    returns it (state in progress, a new Delivery) or None.

    Without *home*, "first" is the oldest due message of the queue (first
    in, first out).  A consumer that lost races lately passes its *home*
    shard: it then takes from that shard if it holds a due message at most
    *slack* seconds younger than the oldest, else from the shard with the
    oldest (unless not *steal*: then None); so consumers that share a
    queue keep to different trees (see :mod:`dispatch.state.shards`), and order
    is kept to within *slack*.  Without *glance*, a *home* shard with a due
    message is taken without looking at the others (whose trees other
    consumers keep changing, so looking costs a load each): the consumer
    glances at them now and then.

    A queue keeps each message under the time it next needs attention: a
    pending one under when it may be delivered, a claimed one under when its
    claim lapses.  So one ordered scan finds due messages and lapsed claims
    (delivered again, or dead-lettered), and drops entries of finished
    messages, which :func:`finish` leaves behind so that it never touches
    the shared tree.  The caller commits at once: a ConflictError means
    another consumer was there first, and the caller aborts and retries.
    """
    now = time.time() if now is None else now
    queue = dispatch.queues.get(queue_name)
    if queue is None:
        return None
    bound = model.ready_bound(now)
    ready = queue.ready
    while True:
        tree = _choose_tree(ready, bound, home, slack, spread, steal, glance)
        if tree is None:
            return None
        # A consumer that just lost a race (spread > 1) picks among the
        # first few due messages at random, so that several consumers stop
        # reaching for the same one.
        key = random.choice(list(itertools.islice(tree.keys(max=bound), spread)))
        message: model.Message = ready.pop(key)
        if message.queue_key != key or message.state not in (
            model.PENDING,
            model.IN_PROGRESS,
        ):
            continue  # left behind by finish(), a requeue or a cancel
        if message.state == model.IN_PROGRESS:
            owner = message.claimed_by or {}
            reason = (
                f"consumer {owner.get('consumer')} (pid {owner.get('pid')} on "
                f"{owner.get('host')}) did not finish it in time"
            )
            release(
                dispatch, message, reason, "lapsed", now, max_deliveries, backoff_base
            )
            continue
        queue.pending_count.change(-1)
        run = dispatch.runs[message.run_id]
        if run.cancelled is not None:
            # Sent by a handler that was finishing as the run was cancelled.
            message.state = model.CANCELLED_MESSAGE
            message.finished, message.queue_key = now, None
            run.open_count.change(-1)
            continue
        message.state = model.IN_PROGRESS
        message.deliveries += 1
        pid = os.getpid() if pid is None else pid
        message.claimed_by = {"host": HOST, "pid": pid, "consumer": consumer}
        message.lease_until = now + lease
        message.add_attempt(
            model.Delivery(message.deliveries, now, HOST, pid, consumer)
        )
        put_in_queue(queue, message, message.lease_until)
        return message


def _choose_tree(
    ready: shards.ShardedIndex,
    bound: str,
    home: int | None,
    slack: float,
    spread: int,
    steal: bool,
    glance: bool,
) -> Any:
    """The tree of *ready* (a :class:`~dispatch.state.shards.ShardedIndex`) to
    take the next message from (see :func:`claim`), or None if none is due
    by ready key *bound*."""
    if home is not None and not glance:
        home_tree = ready.shard(home)
        if home_tree and next(iter(home_tree.keys(max=bound)), None) is not None:
            return home_tree
    heads = []
    for tree in ready.trees():
        first = next(iter(tree.keys(max=bound)), None)
        if first is not None:
            heads.append((first, tree))
    if not heads:
        return None
    oldest = min(key for key, _tree in heads)
    if home is None:
        return next(tree for key, tree in heads if key == oldest)
    limit = model.ready_bound(model.ready_time(oldest) + slack)
    recent = [tree for key, tree in heads if key <= limit]
    home_tree = ready.shard(home)
    if any(tree is home_tree for tree in recent):
        return home_tree
    if not steal:
        return None
    # Another shard with a message as old: after a lost race any of them,
    # else the next one round from home, so that consumers with different
    # homes reach for different shards.
    if spread > 1:
        return random.choice(recent)
    numbers = {id(tree): number for number, tree in ready.numbered_trees()}
    start = home
    return min(
        recent, key=lambda tree: (numbers.get(id(tree), start) - start) % shards.SHARDS
    )


def finish(
    dispatch: model.Dispatch,
    message: model.Message,
    now: float | None = None,
    exit_code: int | None = None,
    output_tail: str | None = None,
) -> None:
    """Mark a claimed *message* done (its consumer succeeded).

    Only the message and conflict-free counters change; the queue entry is
    dropped later by a claimer (see :func:`claim`).
    """
    now = time.time() if now is None else now
    message.claimed_by = message.lease_until = None
    message.state = model.DONE
    message.finished = now
    attempt = message.attempts[-1]
    attempt.finished, attempt.outcome = now, "done"
    attempt.exit_code, attempt.output_tail = exit_code, output_tail
    run = dispatch.runs[message.run_id]
    run.open_count.change(-1)
    if message.topic is not None:
        _drop_copy(run, message)
    if run.open_count() == 0:  # the last one (see dispatch.state.runindex)
        runindex.note(dispatch, run)


def _drop_copy(run: model.Run, message: model.Message) -> None:
    """A subscriber acknowledged its copy: it leaves the run, counted, so
    that a topic's storage is bounded by what is not acknowledged yet.
    The queue's entry goes at the next claim (see :func:`claim`)."""
    step = run.steps[message.node]
    if step.acknowledged_copies is None:  # a step made before topics fanned out
        step.acknowledged_copies = Length()
    step.acknowledged_copies.change(1)
    del run.messages[message.id]
    step.message_ids.remove(message.id)


def release(
    dispatch: model.Dispatch,
    message: model.Message,
    reason: str,
    outcome: str = "error",
    now: float | None = None,
    max_deliveries: int = MAX_DELIVERIES,
    backoff_base: float = BACKOFF_BASE,
    exit_code: int | None = None,
    output_tail: str | None = None,
    given_back: bool = False,
) -> str:
    """A delivery of claimed *message* failed: queue it again after a
    back-off, or make it a dead letter once it was delivered
    *max_deliveries* times.  Returns the new state.

    *given_back* (the handler raised :class:`GiveBack`): the delivery is
    recorded but not counted, and the message is due again at once."""
    now = time.time() if now is None else now
    queue = queue_named(dispatch, message.queue)
    if queue.ready.get(message.queue_key) is message:
        del queue.ready[message.queue_key]
    message.claimed_by = message.lease_until = None
    message.reason = reason
    attempt = message.attempts[-1]
    attempt.finished, attempt.outcome, attempt.error = now, outcome, reason
    attempt.exit_code, attempt.output_tail = exit_code, output_tail
    if given_back:
        message.given_back += 1
        attempt.outcome = "given back"
    elif message.counted_deliveries >= max_deliveries:
        message.queue_key = None
        dead_letter(dispatch, message, reason, now)
        return message.state
    message.state = model.PENDING
    message.not_before = now
    if not given_back:
        message.not_before += backoff_delay(message.counted_deliveries, backoff_base)
    put_in_queue(queue, message, message.not_before)
    queue.pending_count.change(1)
    logger.info(
        "%r delivery %d failed (%s); again in %.1fs",
        message,
        message.deliveries,
        reason,
        message.not_before - now,
    )
    return message.state


def dead_letter(
    dispatch: model.Dispatch,
    message: model.Message,
    reason: str,
    now: float | None = None,
) -> None:
    """Make *message* a dead letter (no queue will deliver it again)."""
    now = time.time() if now is None else now
    message.state = model.DEAD
    message.finished = now
    message.reason = (
        f"dead-lettered after {message.deliveries} deliveries; last: {reason}"
    )
    dispatch.dead_letters[message.id] = message
    dispatch.dead_count.change(1)
    runindex.count_dead_letter(dispatch, message.queue, 1)
    run = dispatch.runs[message.run_id]
    run.open_count.change(-1)
    run.dead_count.change(1)
    runindex.note(dispatch, run)
    logger.warning("%r: %s", message, message.reason)


def still_claimed_by(message: model.Message, consumer: str) -> bool:
    """True while *message* is in progress under *consumer*'s claim."""
    owner = message.claimed_by or {}
    return message.state == model.IN_PROGRESS and owner.get("consumer") == consumer


def complete(
    dispatch: model.Dispatch,
    message: model.Message,
    sends: list[Send],
    now: float | None = None,
    outcome: Mapping[str, Any] | None = None,
    shard: int | None = None,
) -> list[model.Message]:
    """Finish claimed *message* and create the messages its handler sent
    (*sends*: ``(node, payload, path, delay)`` as recorded by the wrapper)
    in *shard* (the consumer's own; see :func:`enqueue`): zocalo's ack and
    send, for one commit."""
    run = dispatch.runs[message.run_id]
    if run.cancelled is not None:
        if sends:
            logger.info("run %s is cancelled: %d send(s) dropped", run.id, len(sends))
        sends = []
    created = [
        sent
        for node, payload, path, delay in sends
        for sent in enqueue_all(
            dispatch, run, node, payload, path, message.environment, delay, now, shard
        )
    ]
    noted = outcome or {}
    for recipe, parameters, name in noted.get("start_runs", ()):
        if str(parameters.get("guid")) in dispatch.runs:
            # Checked by the handler; only a request racing its twin is here.
            logger.error("run %s exists already; not started again", parameters["guid"])
        elif run.cancelled is None:
            start_run(dispatch, recipe, parameters, now, name)
    finish(
        dispatch,
        message,
        now,
        exit_code=noted.get("exit_code"),
        output_tail=noted.get("output_tail"),
    )
    message.attempts[-1].slurm_job = noted.get("slurm_job")
    return created


def wrapper_for(
    dispatch: model.Dispatch, message: model.Message, sends: list[Send]
) -> RecipeWrapper:
    """The :class:`RecipeWrapper` a service gets for claimed *message*; what
    it sends is appended to list *sends* (applied by :func:`complete`)."""
    run = dispatch.runs[message.run_id]

    def record(node: int, payload: Any, path: list[int], delay: float) -> int:
        sends.append((node, copy.deepcopy(payload), list(path), delay))
        return node

    return RecipeWrapper(
        recipe=run.recipe,
        pointer=message.node,
        path=message.path,
        environment=message.environment,
        payload=message.payload,
        send_to_node=record,
        message_id=message.id,
    )
