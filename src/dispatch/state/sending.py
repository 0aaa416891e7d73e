"""Sending: the messages a step gets, on its queue and its topic's
subscriptions.  Part of the broker (:mod:`dispatch.state.broker`, which
names these functions too); each works in the caller's transaction."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping
from typing import Any

from dispatch.state import model, topics
from dispatch.state import steps as step_kinds

logger = logging.getLogger(__name__)


def queue_named(dispatch: model.Dispatch, name: str) -> model.Queue:
    """The queue *name*, created on first use."""
    queue = dispatch.queues.get(name)
    if queue is None:
        queue = dispatch.queues[name] = model.Queue(name)
    return queue


def destination_queue(step: Mapping[str, Any]) -> str | None:
    """The queue messages for recipe *step* wait on, as its kind decides
    (see :mod:`dispatch.state.steps`): its ``queue``, or the command queue
    for a ``command`` step; None for a step with only a ``topic`` (its
    messages go to the topic's subscribers) or with neither (zocalo's
    silent drop)."""
    return step_kinds.destination_queue(step)


def enqueue(*arguments: Any, **options: Any) -> model.Message | None:
    """The first message :func:`enqueue_all` makes with the same arguments
    (the step's queue's, else a topic copy), or None when it made none."""
    created = enqueue_all(*arguments, **options)
    return created[0] if created else None


def enqueue_all(
    dispatch: model.Dispatch,
    run: model.Run,
    node: int,
    payload: Any,
    path: list[int],
    environment: dict[str, Any],
    delay: float | None = 0.0,
    now: float | None = None,
    shard: int | None = None,
    queue_name: str | None = None,
) -> list[model.Message]:
    """Create the messages for step *node* of *run*: one on the step's
    queue, and for a step with a ``topic`` one copy per durable
    subscription of the topic (see :mod:`dispatch.state.topics`), plus an
    entry in the topic's log; returns them (none for a step without
    either: dropped silently, as zocalo does).  Their ids, and so their
    entries in the indexes, are in *shard* (random if None): a consumer
    passes its own, so that its commits touch its own trees.  *queue_name*
    sends to that queue only, instead of the step's own destinations (a
    workflows service that sends to a step's topic, see
    :mod:`dispatch.state.transport`; a dead copy retried)."""
    now = time.time() if now is None else now

    def file_on(queue_name: str) -> model.Message:
        message = model.Message(
            model.new_id(shard),
            run.id,
            node,
            queue_name,
            list(path),
            copy.deepcopy(environment),
            copy.deepcopy(payload),
            now,
        )
        message.not_before = now + max(0.0, float(delay or 0))
        run.messages[message.id] = message
        run.steps[node].message_ids.add(message.id)
        run.open_count.change(1)
        queue = queue_named(dispatch, queue_name)
        put_in_queue(queue, message, message.not_before)
        queue.pending_count.change(1)
        return message

    if queue_name is not None:
        return [file_on(queue_name)]
    step = run.recipe[str(node)]
    own_queue = destination_queue(step)
    created = [file_on(own_queue)] if own_queue is not None else []
    topic = topics.topic_of(step)
    if topic is not None:
        for subscription in topics.subscriptions(dispatch, topic):
            copied = file_on(subscription.queue)
            copied.topic = topic
            created.append(copied)
        body = topics.recipe_body(run, node, path, environment, payload)
        topics.log(dispatch, topic, {RECIPE_HEADER: True}, body, now)
    elif own_queue is None:
        logger.debug("run %s: step %s has no queue; message dropped", run.id, node)
    return created


# Header of a recipe message, as python-workflows writes it.
RECIPE_HEADER = "workflows-recipe"


def put_in_queue(queue: model.Queue, message: model.Message, when: float) -> None:
    """File *message* in *queue* under the time *when* it needs looking at."""
    message.queue_key = model.ready_key(when, message.id)
    queue.ready[message.queue_key] = message
