"""``dispatch show RUN [--json]``: a run's steps, messages, attempts and dead
letters, as text or as the JSON of :func:`dispatch.state.views.run_document`.
Each step is described as its kind says (:mod:`dispatch.state.steps`)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from dispatch.cli import base
from dispatch.state import steps as step_kinds
from dispatch.state import views


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN")
    parser.add_argument("--json", action="store_true", help="print JSON instead")
    base.add_zeo_option(parser)


def run(options: argparse.Namespace) -> int:
    with base.dispatch_at(options.zeo) as dispatch:
        document = views.run_document(dispatch, options.run)
    if options.json:
        print(json.dumps(document, indent=2, default=str))
        return base.EXIT_OK
    print(
        f"run {document['run']}: {document['status']}, created "
        f"{base.when(document['created'])}, finished {base.when(document['finished'])}"
    )
    for step in document["steps"]:
        described = step_kinds.describe(document["recipe"].get(str(step["node"]), {}))
        label = f" ({described})" if described else ""
        print(f"step {step['node']}{label}: {step['status']}")
        for message in step["messages"]:
            _print_message(message)
    return base.EXIT_OK


def _print_message(message: dict[str, Any]) -> None:
    print(
        f"  message {message['id']} on {message['queue']}: "
        f"{message['state']}, {message['deliveries']} delivery(ies)"
    )
    if message["reason"]:
        print(f"    reason: {message['reason']}")
    for attempt in message["attempts"]:
        where = f"{attempt['consumer']} pid {attempt['pid']} on {attempt['host']}"
        exit_code = attempt["exit_code"]
        code = "" if exit_code is None else f", exit {exit_code}"
        print(
            f"    attempt {attempt['number']}: "
            f"{attempt['outcome'] or 'running'}{code}, {where}"
        )
        if attempt["program"] or attempt["slurm_job"]:
            print(f"      {program_line(attempt)}")
        if attempt["error"]:
            print(f"      error: {attempt['error']}")
        tail = views.output_tail(attempt)  # the program's while it runs
        if tail:
            for line in str(tail).splitlines():
                print(f"      | {line}")


def program_line(attempt: dict[str, Any]) -> str:
    """Where a command step's program ran: its Slurm job or its pid."""
    program = attempt["program"] or {}
    job = attempt["slurm_job"] or program.get("slurm_job")
    where = f"Slurm job {job}" if job else f"pid {program.get('pid')}"
    if job and program.get("slurm_state"):
        where += f" ({program['slurm_state']})"
    adopted = ", adopted" if program.get("adopted") else ""
    return f"program {program.get('name', '?')}: {where}{adopted}"


COMMAND = base.Command(
    __name__,
    summary="a run's steps, messages, attempts",
    description="Show a run.",
    add_arguments=add_arguments,
    run=run,
)
