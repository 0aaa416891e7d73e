"""Operator actions on dispatch state: cancel a run, send dead letters
again, move messages between queues, record service instances and ask them
to stop, adopt a delivery made outside any queue (``dispatch wrap``).

Like :mod:`dispatch.state.broker`, each function changes objects of one open
connection and leaves the commit to the caller.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from typing import Any

from dispatch.state import broker, model, runindex

logger = logging.getLogger(__name__)


def cancel_run(
    dispatch: model.Dispatch, run: model.Run, now: float | None = None
) -> int:
    """Cancel *run*: its pending messages are withdrawn at once; messages
    being handled finish, and what they send is withdrawn by the claimer
    that meets it (consumers never write the Run object, so a cancel cannot
    conflict with them).  Returns how many messages were withdrawn."""
    now = time.time() if now is None else now
    if run.cancelled is not None:
        return 0
    run.cancelled = now
    withdrawn = 0
    for message in run.messages.values():
        if message.state != model.PENDING:
            continue
        queue = dispatch.queues[message.queue]
        if queue.ready.get(message.queue_key) is message:
            del queue.ready[message.queue_key]
        queue.pending_count.change(-1)
        message.state = model.CANCELLED_MESSAGE
        message.finished = now
        message.queue_key = None
        run.open_count.change(-1)
        withdrawn += 1
    runindex.note(dispatch, run)
    logger.info("run %s cancelled; %d pending message(s) withdrawn", run.id, withdrawn)
    return withdrawn


def retry_dead(
    dispatch: model.Dispatch,
    run: model.Run,
    node: int | None = None,
    now: float | None = None,
) -> list[model.Message]:
    """Send *run*'s dead letters (of step *node*, default all) again, as
    new messages; returns the new messages.  The old ones stay, marked
    ``reinjected_as``, and leave the dead-letter index."""
    if run.cancelled is not None:
        raise ValueError(f"run {run.id} is cancelled; start a new run instead")
    revived = []
    for message in list(run.messages.values()):
        if message.state != model.DEAD or getattr(message, "reinjected_as", None):
            continue
        if node is not None and message.node != node:
            continue
        new = broker.enqueue(
            dispatch,
            run,
            message.node,
            message.payload,
            message.path,
            message.environment,
            now=now,
            # A subscriber's copy goes back to that subscriber only.
            queue_name=message.queue if message.topic else None,
        )
        if new is None:
            continue
        new.reinjected_from, new.topic = message.id, message.topic
        mark_revived(dispatch, run, message, new)
        revived.append(new)
    return revived


def mark_revived(
    dispatch: model.Dispatch, run: model.Run, old: model.Message, new: model.Message
) -> None:
    """Bookkeeping when dead letter *old* is sent again as *new*."""
    old.reinjected_as = new.id
    run.dead_count.change(-1)
    runindex.note(dispatch, run)
    if old.id in dispatch.dead_letters:
        del dispatch.dead_letters[old.id]
        dispatch.dead_count.change(-1)
        runindex.count_dead_letter(dispatch, old.queue, -1)


def drain(
    dispatch: model.Dispatch,
    source: str,
    destination: str,
    now: float | None = None,
    limit: int | None = None,
) -> list[model.Message]:
    """Move the pending messages of queue *source* to *destination* (``.``:
    each to its own step's queue, for messages parked elsewhere), as
    ``zocalo.queue_drain`` does; returns the messages moved (at most
    *limit*, oldest first).  Claimed messages stay: their consumer finishes
    them."""
    now = time.time() if now is None else now
    queue = dispatch.queues.get(source)
    if queue is None:
        return []
    moved: list[model.Message] = []
    for key, message in list(queue.ready.items()):
        if limit is not None and len(moved) >= limit:
            break
        if message.queue_key != key or message.state != model.PENDING:
            continue
        if destination == ".":
            step = dispatch.runs[message.run_id].recipe[str(message.node)]
            # A subscriber's copy is not the step queue's message.
            target_name = None if message.topic else broker.destination_queue(step)
        else:
            target_name = destination
        if target_name is None or target_name == source:
            continue
        del queue.ready[key]
        queue.pending_count.change(-1)
        message.queue = target_name
        target = broker.queue_named(dispatch, target_name)
        broker.put_in_queue(target, message, max(message.not_before, now))
        target.pending_count.change(1)
        moved.append(message)
    return moved


def instances_of(dispatch: model.Dispatch) -> Any:
    """The service-instance index (created in databases made before it)."""
    return model.tree_attribute(dispatch, "instances")


def register_instance(
    dispatch: model.Dispatch,
    service: str,
    queue: str,
    now: float | None = None,
    pid: int | None = None,
) -> model.ServiceInstance:
    """Record a starting service process; returns its ServiceInstance."""
    now = time.time() if now is None else now
    instance = model.ServiceInstance(
        model.new_id(),
        service,
        queue,
        broker.HOST,
        os.getpid() if pid is None else pid,
        now,
    )
    instances_of(dispatch)[instance.id] = instance
    running_index(dispatch)[instance.id] = instance
    return instance


def running_index(dispatch: model.Dispatch) -> Any:
    """The instances not marked stopped (id -> instance): what the console
    and ``dispatch shutdown`` look through, never every instance that ever
    ran.  Built, once, in databases made before it (a write transaction)."""
    index = model.tree_attribute(dispatch, "running_instances", create=False)
    if index is None:
        index = model.tree_attribute(dispatch, "running_instances")
        for instance in instances_of(dispatch).values():
            if instance.stopped is None:
                index[instance.id] = instance
    return index


def mark_stopped(
    dispatch: model.Dispatch, instance: model.ServiceInstance, now: float | None = None
) -> None:
    """Record that *instance* stopped (it leaves the running index)."""
    if instance.stopped is None:
        instance.stopped = time.time() if now is None else now
    running_index(dispatch).pop(instance.id, None)


def beat(dispatch: model.Dispatch, instance_id: str, now: float | None = None) -> None:
    """Record that instance *instance_id* is alive at *now*."""
    instance = instances_of(dispatch)[instance_id]
    now = time.time() if now is None else now
    if instance.heartbeat is None:
        instance.heartbeat = model.Heartbeat(now)
    else:
        instance.heartbeat.time = now


def request_shutdown(
    dispatch: model.Dispatch, name: str | None = None, now: float | None = None
) -> list[model.ServiceInstance]:
    """Ask running instances matching *name* (all when None) to stop;
    returns them."""
    now = time.time() if now is None else now
    asked = []
    for instance in list(running_index(dispatch).values()):
        if instance.stopped is not None or instance.stop_requested is not None:
            continue
        if name is None or instance.matches(name):
            instance.stop_requested = now
            asked.append(instance)
    return asked


def adopt_delivery(
    dispatch: model.Dispatch,
    run: model.Run,
    node: int,
    payload: Any,
    consumer: str,
    now: float | None = None,
    pid: int | None = None,
) -> model.Message:
    """A message for step *node* that is already being handled outside any
    queue (``dispatch wrap``): created in progress, with its first attempt."""
    now = time.time() if now is None else now
    pid = os.getpid() if pid is None else pid
    step = run.recipe[str(node)]
    message = model.Message(
        model.new_id(),
        run.id,
        node,
        broker.destination_queue(step) or "dispatch.wrap",
        [],
        copy.deepcopy(run.environment),
        copy.deepcopy(payload),
        now,
    )
    message.state = model.IN_PROGRESS
    message.deliveries = 1
    message.claimed_by = {"host": broker.HOST, "pid": pid, "consumer": consumer}
    message.attempts = [model.Attempt(1, now, broker.HOST, pid, consumer)]
    run.messages[message.id] = message
    run.steps[node].message_ids.add(message.id)
    run.open_count.change(1)
    runindex.note(dispatch, run)
    return message
