"""``dispatch go RECIPE|NAME... [-p KEY=VALUE]... [--wait | --dry-run]``:
start a run of one or more recipes (merged), and with ``--wait`` follow it
to its end; ``--dry-run`` shows what would be sent and sends nothing."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from dispatch.cli import base, progress
from dispatch.state import broker, model, topics, views
from dispatch.state.database import dispatch_state, ensure_run_index, write_retried
from dispatch.state.recipe import Recipe, RecipeError

logger = logging.getLogger(__name__)

RECIPES_VARIABLE = "DISPATCH_RECIPES"


def find_recipe(reference: str, directory: str | None) -> Recipe:
    """The recipe named by *reference*: a file path, or a name in
    *directory* (``NAME.json``, as zocalo's recipe directory)."""
    path = Path(reference)
    if not path.is_file() and directory:
        path = Path(directory) / f"{reference}.json"
    if not path.is_file():
        where = f" or in {directory}" if directory else ""
        raise base.CommandError(f"no recipe file {reference!r}{where}", base.EXIT_USAGE)
    try:
        recipe = Recipe.from_file(path)
        recipe.validate()
    except RecipeError as error:
        raise base.CommandError(f"{path}: {error}", base.EXIT_USAGE) from None
    except (OSError, UnicodeDecodeError) as error:
        raise base.CommandError(
            f"{path}: cannot read: {error}", base.EXIT_USAGE
        ) from None
    return recipe


def parse_parameters(pairs: list[str]) -> dict[str, str]:
    """``["k=v", ...]`` -> dict (values are strings, as with ``zocalo.go -s``)."""
    parameters = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise base.CommandError(
                f"parameter {pair!r} is not KEY=VALUE", base.EXIT_USAGE
            )
        parameters[key] = value
    return parameters


def _is_terminal() -> bool:
    """True when stdout is a terminal that understands cursor moves."""
    return sys.stdout.isatty() and os.environ.get("TERM") != "dumb"


def wait_for_run(
    database: Any,
    run_id: str,
    timeout: float | None,
    out: IO[str],
    live: bool = False,
) -> str:
    """Show the run's progress on *out* until it ends, woken by each commit
    (zeo ``watch``); returns its final status, or running at the timeout.

    *live* (for a terminal): a table of the steps redrawn in place;
    otherwise a ``step N: STATUS`` line whenever a step's status changes.
    Both end with ``run ID: STATUS``."""
    changed = threading.Event()
    handle = database.storage.watch(lambda tid, oids: changed.set())
    deadline = None if timeout is None else time.monotonic() + timeout
    display = progress.LiveTable(out) if live else progress.ProgressLines(out)
    try:
        while True:
            changed.clear()
            with dispatch_state(database) as dispatch:
                rows = views.step_rows(dispatch, run_id)
                status = dispatch.runs[run_id].status
            if isinstance(display, progress.LiveTable):
                display.draw(progress.render(run_id, status, rows))
            else:
                display.draw(rows)
            if status != model.RUNNING:
                display.close()
                out.write(f"run {run_id}: {status}\n")
                return status
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return status
            changed.wait(remaining)
    finally:
        display.close()
        out.flush()
        handle.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipes", nargs="+", metavar="RECIPE|NAME")
    parser.add_argument(
        "-p",
        "--parameter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a {KEY} for the recipe (repeatable)",
    )
    parser.add_argument(
        "--recipe-dir",
        default=os.environ.get(RECIPES_VARIABLE),
        help=f"where NAME.json recipes are (default ${RECIPES_VARIABLE})",
    )
    parser.add_argument(
        "--name",
        help="the recipe name the run is listed under (default: the recipe "
        "files' names, without .json, joined by +)",
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="show progress until the run ends (a live table on a terminal)",
    )
    parser.add_argument(
        "--timeout", type=float, help="with --wait: give up after this many seconds"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and show the start messages; nothing is sent (no zeo needed)",
    )
    base.add_zeo_option(parser)


def recipe_name(reference: str) -> str:
    """The name a run of recipe *reference* (a path or a NAME) is listed
    under: its file name without ``.json``."""
    name = Path(reference).name
    return name[: -len(".json")] if name.endswith(".json") else name


def dry_run(recipe: Recipe, parameters: dict[str, str], name: str) -> int:
    """Start the run on a dispatch state of its own in memory, never stored,
    and print its start messages: what ``go`` would send."""
    try:
        started = broker.start_run(model.Dispatch(), recipe, parameters, name=name)
    except (RecipeError, ValueError) as error:
        raise base.CommandError(str(error), base.EXIT_USAGE) from None
    print(f"run {started.id} of {name} (dry run: nothing sent)")
    for message in sorted(started.messages.values(), key=lambda m: m.node):
        payload = json.dumps(message.payload, sort_keys=True)
        print(f"step {message.node} -> queue {message.queue}: {payload}")
    # A topic's copies depend on who subscribed by the time it is sent.
    for node, value in recipe.start:
        topic = topics.topic_of(recipe.steps.get(node, {}))
        if topic is not None:
            payload = json.dumps(value, sort_keys=True)
            print(f"step {node} -> topic {topic} (each durable subscriber): {payload}")
    return base.EXIT_OK


def run(options: argparse.Namespace) -> int:
    recipe = Recipe()
    for reference in options.recipes:
        recipe = recipe.merge(find_recipe(reference, options.recipe_dir))
    name = options.name or "+".join(map(recipe_name, options.recipes))
    if not name.strip() or any(c in name for c in "\r\n"):
        raise base.CommandError(
            f"--name {name!r}: give a name on one line", base.EXIT_USAGE
        )
    parameters = parse_parameters(options.parameter)
    if options.dry_run:
        if options.wait:
            raise base.CommandError(
                "--dry-run sends nothing to --wait for", base.EXIT_USAGE
            )
        return dry_run(recipe, parameters, name)
    database = base.open_database(options.zeo)
    try:
        ensure_run_index(database)
        try:
            run_id = write_retried(
                database,
                lambda dispatch: (
                    broker.start_run(dispatch, recipe, parameters, name=name).id
                ),
            )
        except (RecipeError, ValueError) as error:
            raise base.CommandError(str(error), base.EXIT_USAGE) from None
        print(run_id, flush=True)
        if not options.wait:
            return base.EXIT_OK
        status = wait_for_run(
            database, run_id, options.timeout, sys.stdout, live=_is_terminal()
        )
    finally:
        database.close()
    if status == model.SUCCEEDED:
        return base.EXIT_OK
    if status == model.RUNNING:
        print(f"run {run_id} still running after {options.timeout}s", file=sys.stderr)
        return base.EXIT_TIMEOUT
    print(f"run {run_id} {status}", file=sys.stderr)
    return base.EXIT_FAILED


COMMAND = base.Command(
    __name__,
    summary="start a run of recipes [--wait]",
    description="Start a run of one or more recipes (merged).",
    add_arguments=add_arguments,
    run=run,
)
