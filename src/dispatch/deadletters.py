"""Dead letters: ``dispatch dlq-check``, ``dlq-purge`` and ``dlq-reinject``,
the operator loop of zocalo (alert, dump to files, fix, re-inject).

A dead letter is a message that failed ``max_deliveries`` times; it stays in
its run (state ``dead``, with the reason) and in the ``dead_letters`` index
until purged.  ``dlq-purge`` writes each one as a JSON file in zocalo's
layout (``LOCATION/YYYY-MM-DD/msg-YYYYmmdd-HHMMSS-mmm-ID``, a document with
``exported``, ``header`` and ``message``), flushed to disk before the index
entry is removed, so a crash leaves at worst a duplicate, never a loss.
``dlq-reinject`` sends such a file's message back to its step as a new
message of the same run.
"""

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from dispatch import admin, broker, model
from dispatch.commands import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    add_zeo_option,
    dispatch_state,
    open_database,
    run_command,
)

logger = logging.getLogger(__name__)

PURGE_LOCATION_VARIABLE = "DISPATCH_DLQ_LOCATION"


def dead_letter_counts(dispatch):
    """``{queue: number of dead letters}``."""
    counts = {}
    for message in dispatch.dead_letters.values():
        counts[message.queue] = counts.get(message.queue, 0) + 1
    return counts


def export_document(dispatch, message, now):
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


def _write_durably(path, document):
    """Write *document* to *path* and flush it to disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial")
    with open(temporary, "w", encoding="utf-8") as stream:
        json.dump(document, stream, indent=2, default=str)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temporary, path)


def purge(database, location, queues=None, now=None):
    """Move dead letters (of *queues*, default all) to files in *location*;
    returns the paths written."""
    now = time.time() if now is None else now
    written = []
    with dispatch_state(database, write=True) as dispatch:
        for message_id, message in list(dispatch.dead_letters.items()):
            if queues and message.queue not in queues:
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
            message.purged = now
            written.append(path)
    return written


def reinject(database, document, destination=None, now=None):
    """Send the message of a purged *document* back to its step, as a new
    message of its run; returns the new message id.

    The run stops counting the old dead letter, so it can still succeed.
    """
    header, body = document.get("header", {}), document.get("message", {})
    run_id = header.get("run") or (body.get("environment") or {}).get("ID")
    if not run_id or "recipe-pointer" not in body:
        raise CommandError("not a dead letter exported by dlq-purge", EXIT_USAGE)
    with dispatch_state(database, write=True) as dispatch:
        run = dispatch.runs.get(run_id)
        if run is None:
            raise CommandError(f"run {run_id} is not in this database", EXIT_FAILED)
        node = int(body["recipe-pointer"])
        if node not in run.steps:
            raise CommandError(f"run {run_id} has no step {node}", EXIT_FAILED)
        old = run.messages.get(header.get("message-id"))
        if old is not None and getattr(old, "reinjected_as", None):
            raise CommandError(
                f"dead letter {old.id} was re-injected already as {old.reinjected_as}",
                EXIT_FAILED,
            )
        message = broker.enqueue(
            dispatch,
            run,
            node,
            body.get("payload"),
            body.get("recipe-path", []),
            body.get("environment") or run.environment,
            now=now,
        )
        if message is None:
            raise CommandError(f"step {node} of run {run_id} has no queue", EXIT_FAILED)
        if destination:
            queue = dispatch.queues[message.queue]
            del queue.ready[message.queue_key]
            queue.pending_count.change(-1)
            message.queue = destination
            target = broker.queue_named(dispatch, destination)
            message.queue_key = model.ready_key(message.not_before, message.id)
            target.ready[message.queue_key] = message
            target.pending_count.change(1)
        message.reinjected_from = header.get("message-id")
        if old is not None and old.state == model.DEAD:
            admin.mark_revived(dispatch, run, old, message)
        return message.id


def _check(options):
    database = open_database(options.zeo)
    try:
        with dispatch_state(database) as dispatch:
            counts = dead_letter_counts(dispatch)
    finally:
        database.close()
    for queue, count in sorted(counts.items()):
        print(f"{queue}: {count}")
    total = sum(counts.values())
    if total:
        print(f"Total of {total} dead letter(s) found")
        return EXIT_FAILED
    print("No dead letters")
    return EXIT_OK


def _purge(options):
    database = open_database(options.zeo)
    try:
        written = purge(database, options.location, set(options.queues))
    finally:
        database.close()
    for path in written:
        print(path)
    return EXIT_OK


def _reinject(options):
    files = list(options.files)
    if not files and not sys.stdin.isatty():
        files = [line.strip() for line in sys.stdin if line.strip()]
    if not files:
        raise CommandError("name the files written by dlq-purge", EXIT_USAGE)
    database = open_database(options.zeo)
    failures = 0
    try:
        for name in files:
            try:
                with open(name, encoding="utf-8") as stream:
                    document = json.load(stream)
                message_id = reinject(database, document, options.destination)
            except (OSError, ValueError, CommandError) as error:
                failures += 1
                print(f"{name}: not re-injected: {error}", file=sys.stderr)
                continue
            print(f"{name}: re-injected as message {message_id}")
            if options.remove:
                os.remove(name)
    finally:
        database.close()
    return EXIT_FAILED if failures else EXIT_OK


def check_main(argv):
    """``dispatch dlq-check``: exit 1 when there are dead letters."""
    parser = argparse.ArgumentParser(
        prog="dispatch dlq-check", description="Count dead letters per queue."
    )
    add_zeo_option(parser)
    return run_command("dlq-check", parser, _check, argv)


def purge_main(argv):
    """``dispatch dlq-purge [QUEUE...] [--location DIR]``."""
    parser = argparse.ArgumentParser(
        prog="dispatch dlq-purge", description="Move dead letters to JSON files."
    )
    parser.add_argument("queues", nargs="*", metavar="QUEUE")
    parser.add_argument(
        "--location",
        default=os.environ.get(PURGE_LOCATION_VARIABLE, "DLQ"),
        help=f"directory for the files (default ${PURGE_LOCATION_VARIABLE} or ./DLQ)",
    )
    add_zeo_option(parser)
    return run_command("dlq-purge", parser, _purge, argv)


def reinject_main(argv):
    """``dispatch dlq-reinject FILE... [-r] [-d QUEUE]``."""
    parser = argparse.ArgumentParser(
        prog="dispatch dlq-reinject",
        description="Send purged dead letters back (files, or names on stdin).",
    )
    parser.add_argument("files", nargs="*", metavar="FILE")
    parser.add_argument(
        "-r", "--remove", action="store_true", help="delete each file once sent"
    )
    parser.add_argument("-d", "--destination", help="send to this queue instead")
    add_zeo_option(parser)
    return run_command("dlq-reinject", parser, _reinject, argv)
