"""Topics: every subscriber gets its own copy of what is sent to a topic.

A topic behaves as a RabbitMQ topic exchange with durable queues bound to
it.  A *durable subscription* (a name on a topic, registered once) is a
queue of its own, ``TOPIC@NAME``: every message sent to the topic after the
subscription was made is copied into it, as one more message of the same
run, and waits there, in zeo, until that subscriber acknowledges it
(claimed, finished, released, redelivered and dead-lettered as any
message).  A subscriber that dies finds the copies made meanwhile when it
comes back.  Deleting the subscription cancels its pending copies and stops
the copying.

Besides, every topic keeps a short log (:data:`LOG_KEEP` seconds) that
*non-durable* subscribers read from the moment they listen, as with a
broker's transient subscriptions (and python-workflows' status topic,
``transient.status``).  Copies and log entry are made in the sender's
transaction.  Each function works in the caller's transaction.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from typing import Any

from BTrees.OOBTree import OOBTree
from persistent import Persistent

from dispatch.state import model, runindex

# Broadcasts older than this are dropped from their topic's log.
LOG_KEEP = 300.0
# Between the topic and the subscription name in a subscription's queue.
SEPARATOR = "@"


class TopicError(ValueError):
    """A topic or subscription name that cannot be used."""


class Subscription(Persistent):
    """A durable subscription: *name* on *topic*, copied into :attr:`queue`."""

    def __init__(self, topic: str, name: str, created: float) -> None:
        self.topic = topic
        self.name = name
        self.created = created
        self.queue = subscription_queue(topic, name)

    def __repr__(self) -> str:
        return f"<Subscription {self.name!r} on topic {self.topic!r}>"


def _check_name(what: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TopicError(f"a {what} name is needed, not {value!r}")
    return value


def subscription_queue(topic: str, name: str) -> str:
    """The queue holding *name*'s copies of *topic*'s messages."""
    _check_name("topic", topic)
    if SEPARATOR in _check_name("subscription", name):
        raise TopicError(f"subscription name {name!r} may not contain {SEPARATOR!r}")
    return f"{topic}{SEPARATOR}{name}"


def topic_of(step: Mapping[str, Any]) -> str | None:
    """The ``topic`` a recipe step broadcasts to, or None."""
    topic = step.get("topic")
    return str(topic) if topic else None


def _registry(dispatch: model.Dispatch, create: bool = False) -> Any:
    """topic -> OOBTree(name -> Subscription); None if never used and not
    *create* (so that senders only read)."""
    return model.tree_attribute(dispatch, "subscriptions", create)


def subscribe(
    dispatch: model.Dispatch, topic: str, name: str, now: float | None = None
) -> Subscription:
    """The durable subscription *name* on *topic*, made if missing (it gets
    every message sent to the topic from this transaction's commit on)."""
    queue = subscription_queue(topic, name)
    registry = _registry(dispatch, create=True)
    named = registry.get(topic)
    if named is None:
        named = registry[topic] = OOBTree()
    found: Subscription | None = named.get(name)
    if found is None:
        found = named[name] = Subscription(
            topic, name, time.time() if now is None else now
        )
        if queue not in dispatch.queues:
            dispatch.queues[queue] = model.Queue(queue)
    return found


def subscriptions(
    dispatch: model.Dispatch, topic: str | None = None
) -> list[Subscription]:
    """The durable subscriptions (of *topic*, default all), by topic and name."""
    registry = _registry(dispatch)
    if registry is None:
        return []
    names = [topic] if topic is not None else list(registry.keys())
    return [s for t in names for s in (registry.get(t) or {}).values()]


def unsubscribe(
    dispatch: model.Dispatch, topic: str, name: str, now: float | None = None
) -> int:
    """Delete subscription *name* on *topic*: no more copies, and its pending
    ones are cancelled (a copy being handled is finished by its consumer).
    Returns how many were cancelled; raises :class:`TopicError` if there is
    no such subscription."""
    now = time.time() if now is None else now
    named = (_registry(dispatch) or {}).get(topic)
    if named is None or name not in named:
        raise TopicError(f"no subscription {name!r} on topic {topic!r}")
    queue_name = named[name].queue
    del named[name]
    if not named:
        del _registry(dispatch)[topic]
    queue = dispatch.queues.get(queue_name)
    if queue is None:
        return 0
    cancelled = 0
    for key, message in list(queue.ready.items()):
        if message.queue_key == key and message.state == model.PENDING:
            del queue.ready[key]
            queue.pending_count.change(-1)
            _cancel(dispatch, message, now)
            cancelled += 1
    if not queue.ready:
        del dispatch.queues[queue_name]
    return cancelled


def _cancel(dispatch: model.Dispatch, message: model.Message, now: float) -> None:
    message.state = model.CANCELLED_MESSAGE
    message.finished, message.queue_key = now, None
    message.reason = "its subscription was deleted"
    run = dispatch.runs[message.run_id]
    run.open_count.change(-1)
    if run.open_count() == 0:
        runindex.note(dispatch, run)


def recipe_body(
    run: model.Run, node: int, path: list[int], environment: Any, payload: Any
) -> dict[str, Any]:
    """A recipe message as python-workflows sends it (its body)."""
    return {
        "recipe": copy.deepcopy(run.recipe),
        "recipe-pointer": node,
        "recipe-path": list(path),
        "environment": copy.deepcopy(environment),
        "payload": copy.deepcopy(payload),
    }


# -- the log non-durable subscribers read ---------------------------------


def logs(dispatch: model.Dispatch) -> Any:
    """topic name -> OOBTree(ready key -> (header, body)), created on first use."""
    return model.tree_attribute(dispatch, "topics")


def log(
    dispatch: model.Dispatch,
    topic: str,
    header: Mapping[str, Any],
    body: Any,
    now: float | None = None,
) -> str:
    """Add *body* to *topic*'s log; returns its key.  Old entries go."""
    now = time.time() if now is None else now
    _check_name("topic", topic)
    every = logs(dispatch)
    entries = every.get(topic)
    if entries is None:
        entries = every[topic] = OOBTree()
    key = model.ready_key(now, model.new_id())
    entries[key] = (copy.deepcopy(dict(header)), copy.deepcopy(body))
    for old in list(entries.keys(max=model.ready_bound(now - LOG_KEEP))):
        del entries[old]
    return key


def logged_after(
    dispatch: model.Dispatch, topic: str, after: str
) -> list[tuple[str, dict[str, Any], Any]]:
    """``(key, header, body)`` of *topic*'s log entries after key *after*."""
    entries = logs(dispatch).get(topic)
    if entries is None:
        return []
    return [
        (key, copy.deepcopy(header), copy.deepcopy(body))
        for key, (header, body) in entries.items(min=after, excludemin=True)
    ]


def listening_from(now: float | None = None) -> str:
    """The cursor of a new non-durable subscriber: everything sent from now."""
    return model.ready_bound(time.time() if now is None else now)
