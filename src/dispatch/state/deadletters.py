"""Dead letters: what ``dispatch dlq-check``, ``dlq-purge`` and
``dlq-reinject`` do, the operator loop of zocalo (alert, dump to files, fix,
re-inject).

A dead letter is a message that failed ``max_deliveries`` times; it stays in
its run (state ``dead``, with the reason) and in the ``dead_letters`` index
until purged.  ``dlq-purge`` writes each one as a JSON file in zocalo's
layout (``LOCATION/YYYY-MM-DD/msg-YYYYmmdd-HHMMSS-mmm-ID``, a document with
``exported``, ``header`` and ``message``), flushed to disk before the index
entry is removed, so a crash leaves at worst a duplicate, never a loss.
``dlq-reinject`` sends such a file's message back to its step as a new
message of the same run.

Like :mod:`dispatch.state.broker`, each function changes objects of one open
connection and leaves the commit to the caller.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from dispatch.state import admin, broker, model, runindex, topics

logger = logging.getLogger(__name__)


class DeadLetterError(ValueError):
    """A purged dead letter that cannot be sent again; the message says why."""


def dead_letter_counts(dispatch: model.Dispatch) -> dict[str, int]:
    """``{queue: number of dead letters}``: the run index's counters (see
    :mod:`dispatch.state.runindex`), or a scan of a database without one."""
    index = runindex.index_of(dispatch)
    if index is not None:
        return index.dead_letter_counts()
    counts: dict[str, int] = {}
    for message in dispatch.dead_letters.values():
        counts[message.queue] = counts.get(message.queue, 0) + 1
    return counts


def export_document(
    dispatch: model.Dispatch, message: model.Message, now: float
) -> dict[str, Any]:
    """The JSON file content for dead letter *message* (zocalo's shape:
    the recipe-wrapped message with the run's recipe, plus our header)."""
    run = dispatch.runs[message.run_id]
    return {
        "exported": {
            "date": time.strftime("%Y-%m-%d", time.localtime(now)),
            "time": time.strftime("%H:%M:%S", time.localtime(now)),
        },
        "header": {
            "message-id": message.id,
            "run": message.run_id,
            "original-destination": message.queue,
            "deliveries": message.deliveries,
            "reason": message.reason,
            "workflows-recipe": True,
        },
        "message": {
            "recipe": run.recipe,
            "recipe-pointer": message.node,
            "recipe-path": message.path,
            "environment": message.environment,
            "payload": message.payload,
        },
    }


def _write_durably(path: Path, document: dict[str, Any]) -> None:
    """Write *document* to *path* and flush it to disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial")
    with open(temporary, "w", encoding="utf-8") as stream:
        json.dump(document, stream, indent=2, default=str)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, path)


def purge(
    dispatch: model.Dispatch,
    location: str | os.PathLike[str],
    queues: Collection[str] | None = None,
    now: float | None = None,
    message_ids: Collection[str] | None = None,
) -> list[Path]:
    """Move dead letters (of *queues*, default all; only those of
    *message_ids* when given) to files in *location*; returns the paths
    written.  Each file is on disk before its entry leaves
    the index, so a commit that fails leaves a duplicate, never a loss."""
    now = time.time() if now is None else now
    written = []
    for message_id, message in list(dispatch.dead_letters.items()):
        if queues and message.queue not in queues:
            continue
        if message_ids is not None and message_id not in message_ids:
            continue
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
        milliseconds = int(now * 1000) % 1000
        path = (
            Path(location)
            / time.strftime("%Y-%m-%d", time.localtime(now))
            / f"msg-{stamp}-{milliseconds:03d}-{message_id}"
        )
        _write_durably(path, export_document(dispatch, message, now))
        del dispatch.dead_letters[message_id]
        dispatch.dead_count.change(-1)
        runindex.count_dead_letter(dispatch, message.queue, -1)
        message.purged = now
        written.append(path)
    return written


def find_dead_letter(dispatch: model.Dispatch, message_id: str) -> model.Message:
    """The dead letter *message_id* of the index; :class:`DeadLetterError`
    when there is none (never one, purged, or sent again)."""
    message = dispatch.dead_letters.get(message_id)
    if message is None:
        raise DeadLetterError(
            f"no dead letter {message_id!r} (see `dispatch dlq-check`)"
        )
    return message


def reinject_dead_letter(
    dispatch: model.Dispatch,
    message_id: str,
    destination: str | None = None,
    now: float | None = None,
) -> str:
    """Send dead letter *message_id*, still in the index, back to its step
    as :func:`reinject` does with a purged one; returns the new message id."""
    now = time.time() if now is None else now
    message = find_dead_letter(dispatch, message_id)
    return reinject(dispatch, export_document(dispatch, message, now), destination, now)


def reinject(
    dispatch: model.Dispatch,
    document: dict[str, Any],
    destination: str | None = None,
    now: float | None = None,
) -> str:
    """Send the message of a purged *document* back to its step, as a new
    message of its run; returns the new message id.

    The run stops counting the old dead letter, so it can still succeed.
    """
    header, body = document.get("header", {}), document.get("message", {})
    run_id = header.get("run") or (body.get("environment") or {}).get("ID")
    if not run_id or "recipe-pointer" not in body:
        raise DeadLetterError("not a dead letter exported by dlq-purge")
    run = dispatch.runs.get(run_id)
    if run is None:
        raise DeadLetterError(f"run {run_id} is not in this database")
    node = int(body["recipe-pointer"])
    if node not in run.steps:
        raise DeadLetterError(f"run {run_id} has no step {node}")
    old = run.messages.get(header.get("message-id"))
    if old is not None and getattr(old, "reinjected_as", None):
        raise DeadLetterError(
            f"dead letter {old.id} was re-injected already as {old.reinjected_as}"
        )
    # A subscriber's copy goes back to that subscriber only.
    topic = topics.topic_of(run.recipe[str(node)])
    original = header.get("original-destination")
    if not (topic and str(original).startswith(topic + topics.SEPARATOR)):
        topic = original = None
    message = broker.enqueue(
        dispatch,
        run,
        node,
        body.get("payload"),
        body.get("recipe-path", []),
        body.get("environment") or run.environment,
        now=now,
        queue_name=original,
    )
    if message is None:
        raise DeadLetterError(f"step {node} of run {run_id} has no queue")
    if topic is not None:
        message.topic = topic
    if destination:
        queue = dispatch.queues[message.queue]
        del queue.ready[message.queue_key]
        queue.pending_count.change(-1)
        message.queue = destination
        target = broker.queue_named(dispatch, destination)
        broker.put_in_queue(target, message, message.not_before)
        target.pending_count.change(1)
    message.reinjected_from = header.get("message-id")
    if old is not None and old.state == model.DEAD:
        admin.mark_revived(dispatch, run, old, message)
    return message.id
