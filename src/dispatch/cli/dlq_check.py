"""``dispatch dlq-check``: count dead letters per queue; exit status 1 when
there are any (zocalo's alert)."""

from __future__ import annotations

import argparse

from dispatch.cli.base import (
    EXIT_FAILED,
    EXIT_OK,
    Command,
    add_zeo_option,
    open_database,
)
from dispatch.state import deadletters
from dispatch.state.database import dispatch_state


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_zeo_option(parser)


def run(options: argparse.Namespace) -> int:
    database = open_database(options.zeo)
    try:
        with dispatch_state(database) as dispatch:
            counts = deadletters.dead_letter_counts(dispatch)
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


COMMAND = Command(
    __name__,
    summary="count dead letters (exit 1 if any)",
    description="Count dead letters per queue.",
    add_arguments=add_arguments,
    run=run,
)
