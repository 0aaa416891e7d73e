"""``dispatch subscriptions [TOPIC] [--delete NAME]``: list the durable
subscriptions to topics (with their copies waiting), or delete one (its
pending copies are cancelled; see :mod:`dispatch.state.topics`)."""

from __future__ import annotations

import argparse

from dispatch.cli import base
from dispatch.state import topics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topic", nargs="?", metavar="TOPIC", help="this topic only")
    parser.add_argument(
        "--delete",
        metavar="NAME",
        help="delete subscription NAME on TOPIC (its pending copies are cancelled)",
    )
    base.add_zeo_option(parser)


def run(options: argparse.Namespace) -> int:
    if options.delete is not None:
        if options.topic is None:
            raise base.CommandError("--delete NAME needs the TOPIC", base.EXIT_USAGE)
        try:
            with base.dispatch_at(options.zeo, write=True) as dispatch:
                cancelled = topics.unsubscribe(dispatch, options.topic, options.delete)
        except topics.TopicError as error:
            raise base.CommandError(str(error), base.EXIT_FAILED) from None
        print(
            f"subscription {options.delete} on topic {options.topic} deleted; "
            f"{cancelled} pending cop{'y' if cancelled == 1 else 'ies'} cancelled"
        )
        return base.EXIT_OK
    with base.dispatch_at(options.zeo) as dispatch:
        rows = []
        for subscription in topics.subscriptions(dispatch, options.topic):
            queue = dispatch.queues.get(subscription.queue)
            waiting = queue.pending_count() if queue is not None else 0
            rows.append(
                (subscription.topic, subscription.name, waiting, subscription.created)
            )
    print(f"{'TOPIC':<24} {'NAME':<24} {'PENDING':>7}  SINCE")
    for topic, name, waiting, created in rows:
        print(f"{topic:<24} {name:<24} {waiting:>7}  {base.when(created)}")
    return base.EXIT_OK


COMMAND = base.Command(
    __name__,
    summary="list or delete durable topic subscriptions",
    description="List the durable subscriptions to topics, or delete one.",
    add_arguments=add_arguments,
    run=run,
)
