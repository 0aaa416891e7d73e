"""Messages as a python-workflows transport sees them, kept in dispatch state.

A workflows service sends *(destination, header, body)*; dispatch keeps
messages of runs.  So that both live in the same queues (a service started
with ``zocalo.service -t zeo`` consumes what ``dispatch go`` starts, and the
other way round), a message is filed as follows:

- a recipe message (header ``workflows-recipe`` true, body with ``recipe``
  and ``recipe-pointer``) belongs to the run named by its environment ``ID``;
  a run that is not there yet (a recipe started by a workflows sender) is
  created from the recipe the message carries, without start messages;
- a plain message becomes a run of its own with one step whose queue is the
  destination, marked as plain, so that dead letters, ``dispatch list`` and
  ``dispatch show`` cover it like any other.

A broadcast is copied to every durable subscription of its topic and logged
for the subscribers listening now (see :mod:`dispatch.state.topics`).  Each
function works in the caller's transaction, as the broker's do.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping
from typing import Any

from dispatch.state import broker, model, topics

logger = logging.getLogger(__name__)

# Header of a recipe message, as python-workflows writes it.
RECIPE_HEADER = broker.RECIPE_HEADER
RECIPE_TRUE = (True, "True", "true", 1)
# A run holding one plain (non-recipe) message has this parameter.
PLAIN_PARAMETER = "workflows-plain"
# Where python-workflows frontends broadcast their service's status.
STATUS_TOPIC = "transient.status"
# Broadcasts older than this are dropped from their topic's log.
BROADCAST_KEEP = topics.LOG_KEEP
# Header fields that describe a delivery, never stored with the message.
DELIVERY_HEADERS = ("message-id", "subscription", "redelivered", "dispatch-deliveries")


class BadMessage(ValueError):
    """A message the transport cannot file (the sender gets this error)."""


def is_recipe_message(header: Mapping[str, Any] | None, body: Any) -> bool:
    """True when *header* marks *body* as a recipe message."""
    marked = (header or {}).get(RECIPE_HEADER) in RECIPE_TRUE
    return marked and isinstance(body, dict)


def _stored_header(header: Mapping[str, Any] | None) -> dict[str, Any]:
    kept = {k: v for k, v in (header or {}).items() if k not in DELIVERY_HEADERS}
    return copy.deepcopy(kept)


def _new_run(
    dispatch: model.Dispatch,
    run_id: str,
    recipe: dict[str, Any],
    parameters: dict[str, Any],
    now: float,
) -> model.Run:
    run = model.Run(run_id, recipe, parameters, {"ID": run_id}, now)
    for key, definition in recipe.items():
        if key.isdigit() and isinstance(definition, dict):
            run.steps[int(key)] = model.Step(int(key), copy.deepcopy(definition))
    dispatch.runs[run_id] = run
    return run


def _plain_run(
    dispatch: model.Dispatch, destination: dict[str, str], service: str, now: float
) -> model.Run:
    """A run of one step, to *destination*, for plain messages."""
    step = dict(destination, service=service)
    return _new_run(dispatch, model.new_id(), {"1": step}, {PLAIN_PARAMETER: True}, now)


def send(
    dispatch: model.Dispatch,
    destination: str,
    header: Mapping[str, Any] | None,
    body: Any,
    delay: float | None = None,
    now: float | None = None,
) -> model.Message:
    """File message *body* for queue *destination* (see the module text);
    returns the new message."""
    now = time.time() if now is None else now
    if not destination or not isinstance(destination, str):
        raise BadMessage(
            f"a queue name is needed to send a message, not {destination!r}"
        )
    if is_recipe_message(header, body):
        message = _send_recipe_message(dispatch, destination, body, delay, now)
    else:
        run = _plain_run(dispatch, {"queue": destination}, "workflows message", now)
        found = broker.enqueue(dispatch, run, 1, body, [], run.environment, delay, now)
        assert found is not None  # the step names its queue
        message = found
    message.workflows_header = _stored_header(header)
    return message


def _send_recipe_message(
    dispatch: model.Dispatch,
    destination: str,
    body: dict[str, Any],
    delay: float | None,
    now: float,
) -> model.Message:
    recipe = body.get("recipe")
    pointer = body.get("recipe-pointer")
    environment = body.get("environment") or {}
    if not isinstance(recipe, dict) or not isinstance(environment, dict):
        raise BadMessage(
            "a recipe message needs a recipe (an object) and an environment "
            "(an object); send it through a workflows RecipeWrapper"
        )
    try:
        node = int(pointer)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadMessage(
            f"recipe-pointer {pointer!r} is not a step number of the recipe"
        ) from None
    recipe_text = {str(key): value for key, value in recipe.items()}
    if not isinstance(recipe_text.get(str(node)), dict):
        raise BadMessage(f"recipe-pointer {node} names no step of the recipe sent")
    run_id = str(environment.get("ID") or model.new_id())
    run = dispatch.runs.get(run_id)
    if run is None:
        run = _new_run(dispatch, run_id, copy.deepcopy(recipe_text), {}, now)
        run.environment = copy.deepcopy(environment)
        logger.info("run %s started by a workflows sender", run_id)
    elif node not in run.steps:
        raise BadMessage(f"run {run_id} has no step {node}; its recipe differs")
    path = [int(step) for step in body.get("recipe-path") or []]
    message = broker.enqueue(
        dispatch,
        run,
        node,
        body.get("payload"),
        path,
        environment,
        delay,
        now,
        queue_name=destination,
    )
    assert message is not None  # a queue name was given
    return message


def delivery(
    dispatch: model.Dispatch, message: model.Message, subscription: int
) -> tuple[dict[str, Any], Any]:
    """The header and body a workflows subscriber gets for claimed *message*."""
    run = dispatch.runs[message.run_id]
    header = dict(copy.deepcopy(getattr(message, "workflows_header", None) or {}))
    header["message-id"] = message.id
    header["subscription"] = subscription
    header["dispatch-deliveries"] = message.deliveries
    if message.deliveries > 1:
        header["redelivered"] = True
    if run.parameters.get(PLAIN_PARAMETER):
        header.pop(RECIPE_HEADER, None)
        return header, copy.deepcopy(message.payload)
    header[RECIPE_HEADER] = True
    body = topics.recipe_body(
        run, message.node, message.path, message.environment, message.payload
    )
    return header, body


def broadcast(
    dispatch: model.Dispatch,
    topic: str,
    header: Mapping[str, Any] | None,
    body: Any,
    now: float | None = None,
) -> list[model.Message]:
    """Broadcast *body* on *topic* (see :mod:`dispatch.state.topics`): an
    entry in the topic's log for those listening now, and a copy for each
    durable subscription; returns the copies.  A recipe message's copies
    belong to its run; a plain message's to a new run of one step, made
    only when the topic has durable subscribers."""
    now = time.time() if now is None else now
    if not topic or not isinstance(topic, str):
        raise BadMessage(f"a topic name is needed to broadcast, not {topic!r}")
    stored = _stored_header(header)
    durable = topics.subscriptions(dispatch, topic)
    if is_recipe_message(header, body):
        copies = [
            _send_recipe_message(dispatch, s.queue, body, None, now) for s in durable
        ]
    elif durable:
        run = _plain_run(dispatch, {"topic": topic}, "workflows broadcast", now)
        copies = [
            broker.enqueue_all(
                dispatch, run, 1, body, [], run.environment, now=now, queue_name=s.queue
            )[0]
            for s in durable
        ]
    else:
        copies = []
    for copied in copies:
        copied.workflows_header, copied.topic = copy.deepcopy(stored), topic
    topics.log(dispatch, topic, stored, body, now)
    return copies


# The log of a topic, as readers of this module knew it.
broadcasts_after = topics.logged_after
listening_from = topics.listening_from


def latest_statuses(
    dispatch: model.Dispatch, now: float | None = None, within: float = 60.0
) -> list[dict[str, Any]]:
    """The last status each python-workflows service broadcast on
    ``transient.status`` in the past *within* seconds (zocalo's status
    monitor), with ``heartbeat``: when it was sent.  Oldest first."""
    now = time.time() if now is None else now
    log = topics.logs(dispatch).get(STATUS_TOPIC)
    if log is None:
        return []
    latest: dict[str, dict[str, Any]] = {}
    for key, (_header, body) in log.items(min=model.ready_bound(now - within)):
        if isinstance(body, dict):
            status = dict(body, heartbeat=model.ready_time(key))
            latest[str(body.get("host"))] = status
    return sorted(latest.values(), key=lambda status: status["heartbeat"])
