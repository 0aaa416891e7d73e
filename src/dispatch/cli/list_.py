"""``dispatch list``: every run with its status."""

from __future__ import annotations

import argparse

from dispatch.cli import base
from dispatch.state import views


def add_arguments(parser: argparse.ArgumentParser) -> None:
    base.add_zeo_option(parser)


def run(options: argparse.Namespace) -> int:
    with base.dispatch_at(options.zeo) as dispatch:
        rows = []
        for run in dispatch.runs.values():
            summary = views.run_summary(run)  # what the web console lists too
            rows.append(
                (
                    summary["run"],
                    summary["status"],
                    base.when(summary["created"]),
                    f"{summary['steps_done']}/{summary['steps']}",
                )
            )
    print(f"{'RUN':<24}  {'STATUS':<9}  {'CREATED':<19}  STEPS DONE")
    for row in rows:
        print(f"{row[0]:<24}  {row[1]:<9}  {row[2]:<19}  {row[3]}")
    return base.EXIT_OK


COMMAND = base.Command(
    __name__,
    summary="list runs and their status",
    description="List runs.",
    add_arguments=add_arguments,
    run=run,
)
