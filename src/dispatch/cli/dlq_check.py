"""``dispatch dlq-check``: count dead letters per queue; exit status 1 when
there are any (zocalo's alert)."""

from __future__ import annotations

import argparse

from dispatch.cli import base
from dispatch.state import deadletters


def add_arguments(parser: argparse.ArgumentParser) -> None:
    base.add_zeo_option(parser)
    base.add_site_options(parser)


def run(options: argparse.Namespace) -> int:
    base.site_of(options)
    with base.dispatch_at(options.zeo) as dispatch:
        counts = deadletters.dead_letter_counts(dispatch)
    for queue, count in sorted(counts.items()):
        print(f"{queue}: {count}")
    total = sum(counts.values())
    if total:
        print(f"Total of {total} dead letter(s) found")
        return base.EXIT_FAILED
    print("No dead letters")
    return base.EXIT_OK


COMMAND = base.Command(
    __name__,
    summary="count dead letters (exit 1 if any)",
    description="Count dead letters per queue.",
    add_arguments=add_arguments,
    run=run,
)
