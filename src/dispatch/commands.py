"""``dispatch go``, ``list`` and ``show``: start runs and look at them.

Every command talks to a zeo server: ``--zeo HOST:PORT`` (or a Unix socket
path), default ``$DISPATCH_ZEO``.  Exit statuses a script can rely on:

=====  ==============================================================
0      done (``go --wait``: the run succeeded)
1      the run failed (a dead letter) or was cancelled; RUN not found
2      usage error, or a recipe that is invalid or cannot be read
3      the zeo server cannot be reached
4      ``go --wait --timeout``: the run was still going at the timeout
=====  ==============================================================
"""

import argparse
import json
import logging
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import transaction

from dispatch import broker, model, progress
from dispatch.recipe import Recipe, RecipeError
from zeo.address import parse_address

logger = logging.getLogger(__name__)

ADDRESS_VARIABLE = "DISPATCH_ZEO"
RECIPES_VARIABLE = "DISPATCH_RECIPES"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_TIMEOUT = 4
# Seconds to wait for the zeo server before saying it cannot be reached.
CONNECT_TIMEOUT = 10


class CommandError(Exception):
    """A failure to report as ``dispatch COMMAND: message`` with a status."""

    def __init__(self, message, status=EXIT_FAILED):
        super().__init__(message)
        self.status = status


def add_zeo_option(parser):
    """The ``--zeo`` option every command shares."""
    parser.add_argument(
        "--zeo",
        metavar="ADDRESS",
        default=os.environ.get(ADDRESS_VARIABLE),
        help=f"zeo server, HOST:PORT or a socket path (default ${ADDRESS_VARIABLE})",
    )


def open_database(address):
    """A ZODB DB on the zeo server at *address* (text)."""
    if not address:
        raise CommandError(
            f"say which zeo server: --zeo HOST:PORT or set ${ADDRESS_VARIABLE}",
            EXIT_USAGE,
        )
    import zeo
    from zeo.exceptions import ClientDisconnected

    try:
        parsed = parse_address(address)
    except ValueError as error:
        raise CommandError(f"--zeo {error}", EXIT_USAGE) from None
    try:
        return zeo.DB(parsed, wait_timeout=CONNECT_TIMEOUT)
    except ClientDisconnected as error:
        raise CommandError(
            f"cannot reach zeo at {address}: {error}", EXIT_UNREACHABLE
        ) from None


@contextmanager
def dispatch_state(database, write=False):
    """``Dispatch`` on a fresh connection; committed if *write*, else aborted."""
    manager = transaction.TransactionManager()
    connection = database.open(manager)
    try:
        manager.begin()
        yield broker.get_dispatch(connection.root())
        if write:
            manager.commit()
        else:
            manager.abort()
    except BaseException:
        manager.abort()
        raise
    finally:
        connection.close()


def run_command(name, parser, handler, argv):
    """Parse *argv*, call ``handler(options)``; map errors to exit statuses."""
    try:
        options = parser.parse_args(argv)
    except SystemExit as exit:
        return EXIT_OK if exit.code == 0 else EXIT_USAGE
    logging.basicConfig(
        format=f"dispatch {name}: %(levelname)s %(message)s", level=logging.WARNING
    )
    try:
        return handler(options)
    except CommandError as error:
        print(f"dispatch {name}: {error}", file=sys.stderr)
        return error.status


# -- go --------------------------------------------------------------------


def find_recipe(reference, directory):
    """The recipe named by *reference*: a file path, or a name in
    *directory* (``NAME.json``, as zocalo's recipe directory)."""
    path = Path(reference)
    if not path.is_file() and directory:
        path = Path(directory) / f"{reference}.json"
    if not path.is_file():
        where = f" or in {directory}" if directory else ""
        raise CommandError(f"no recipe file {reference!r}{where}", EXIT_USAGE)
    try:
        recipe = Recipe.from_file(path)
        recipe.validate()
    except RecipeError as error:
        raise CommandError(f"{path}: {error}", EXIT_USAGE) from None
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(f"{path}: cannot read: {error}", EXIT_USAGE) from None
    return recipe


def parse_parameters(pairs):
    """``["k=v", ...]`` -> dict (values are strings, as with ``zocalo.go -s``)."""
    parameters = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise CommandError(f"parameter {pair!r} is not KEY=VALUE", EXIT_USAGE)
        parameters[key] = value
    return parameters


def _go(options):
    recipe = Recipe()
    for reference in options.recipes:
        recipe = recipe.merge(find_recipe(reference, options.recipe_dir))
    parameters = parse_parameters(options.parameter)
    database = open_database(options.zeo)
    try:
        try:
            with dispatch_state(database, write=True) as dispatch:
                run = broker.start_run(dispatch, recipe, parameters)
                run_id = run.id
        except (RecipeError, ValueError) as error:
            raise CommandError(str(error), EXIT_USAGE) from None
        print(run_id, flush=True)
        if not options.wait:
            return EXIT_OK
        status = wait_for_run(
            database, run_id, options.timeout, sys.stdout, live=_is_terminal()
        )
    finally:
        database.close()
    if status == model.SUCCEEDED:
        return EXIT_OK
    if status == model.RUNNING:
        print(f"run {run_id} still running after {options.timeout}s", file=sys.stderr)
        return EXIT_TIMEOUT
    print(f"run {run_id} {status}", file=sys.stderr)
    return EXIT_FAILED


def _is_terminal():
    """True when stdout is a terminal that understands cursor moves."""
    return sys.stdout.isatty() and os.environ.get("TERM") != "dumb"


def step_states(dispatch, run_id):
    """``{node: status}`` of a run's steps."""
    run = dispatch.runs[run_id]
    return {node: step.status(run) for node, step in run.steps.items()}


def wait_for_run(database, run_id, timeout, out, live=False):
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
                rows = progress.step_rows(dispatch, run_id)
                status = dispatch.runs[run_id].status
            if live:
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


def go_main(argv):
    """``dispatch go RECIPE|NAME... [-p KEY=VALUE]... [--wait]``."""
    parser = argparse.ArgumentParser(
        prog="dispatch go", description="Start a run of one or more recipes (merged)."
    )
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
        "--wait",
        action="store_true",
        help="show progress until the run ends (a live table on a terminal)",
    )
    parser.add_argument(
        "--timeout", type=float, help="with --wait: give up after this many seconds"
    )
    add_zeo_option(parser)
    return run_command("go", parser, _go, argv)


# -- list and show -----------------------------------------------------------


def _when(timestamp):
    if not timestamp:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _list(options):
    database = open_database(options.zeo)
    try:
        with dispatch_state(database) as dispatch:
            rows = []
            for run in dispatch.runs.values():
                states = step_states(dispatch, run.id)
                done = sum(state == model.DONE for state in states.values())
                rows.append(
                    (run.id, run.status, _when(run.created), f"{done}/{len(states)}")
                )
    finally:
        database.close()
    print(f"{'RUN':<24}  {'STATUS':<9}  {'CREATED':<19}  STEPS DONE")
    for row in rows:
        print(f"{row[0]:<24}  {row[1]:<9}  {row[2]:<19}  {row[3]}")
    return EXIT_OK


def run_document(dispatch, run_id):
    """A JSON-ready description of a run: steps, messages, attempts."""
    run = dispatch.runs.get(run_id)
    if run is None:
        raise CommandError(f"no run {run_id!r} (see `dispatch list`)", EXIT_FAILED)
    steps = []
    for node, step in run.steps.items():
        messages = []
        for message in step.messages(run):
            attempts = [
                {
                    key: getattr(attempt, key, None)
                    for key in (
                        "number host pid consumer slurm_job started finished "
                        "outcome exit_code error output_tail program"
                    ).split()
                }
                for attempt in message.attempts
            ]
            messages.append(
                {
                    "id": message.id,
                    "queue": message.queue,
                    "state": message.state,
                    "deliveries": message.deliveries,
                    "reason": message.reason,
                    "path": message.path,
                    "payload": message.payload,
                    "attempts": attempts,
                }
            )
        steps.append(
            {
                "node": node,
                "service": step.definition.get("service"),
                "status": step.status(run),
                "messages": messages,
            }
        )
    return {
        "run": run.id,
        "status": run.status,
        "created": run.created,
        "finished": run.finished,
        "parameters": run.parameters,
        "recipe": run.recipe,
        "steps": steps,
    }


def _show(options):
    database = open_database(options.zeo)
    try:
        with dispatch_state(database) as dispatch:
            document = run_document(dispatch, options.run)
    finally:
        database.close()
    if options.json:
        print(json.dumps(document, indent=2, default=str))
        return EXIT_OK
    print(
        f"run {document['run']}: {document['status']}, created "
        f"{_when(document['created'])}, finished {_when(document['finished'])}"
    )
    for step in document["steps"]:
        service = f" ({step['service']})" if step["service"] else ""
        print(f"step {step['node']}{service}: {step['status']}")
        for message in step["messages"]:
            print(
                f"  message {message['id']} on {message['queue']}: "
                f"{message['state']}, {message['deliveries']} delivery(ies)"
            )
            if message["reason"]:
                print(f"    reason: {message['reason']}")
            for attempt in message["attempts"]:
                where = (
                    f"{attempt['consumer']} pid {attempt['pid']} on {attempt['host']}"
                )
                exit_code = attempt["exit_code"]
                code = "" if exit_code is None else f", exit {exit_code}"
                print(
                    f"    attempt {attempt['number']}: "
                    f"{attempt['outcome'] or 'running'}{code}, {where}"
                )
                if attempt["program"] or attempt["slurm_job"]:
                    print(f"      {_program_line(attempt)}")
                if attempt["error"]:
                    print(f"      error: {attempt['error']}")
                # A running program's tail is in its record until it ends.
                tail = attempt["output_tail"] or (attempt["program"] or {}).get(
                    "output_tail"
                )
                if tail:
                    for line in str(tail).splitlines():
                        print(f"      | {line}")
    return EXIT_OK


def _program_line(attempt):
    """Where a command step's program ran: its Slurm job or its pid."""
    program = attempt["program"] or {}
    job = attempt["slurm_job"] or program.get("slurm_job")
    where = f"Slurm job {job}" if job else f"pid {program.get('pid')}"
    if job and program.get("slurm_state"):
        where += f" ({program['slurm_state']})"
    adopted = ", adopted" if program.get("adopted") else ""
    return f"program {program.get('name', '?')}: {where}{adopted}"


def list_main(argv):
    """``dispatch list``: every run with its status."""
    parser = argparse.ArgumentParser(prog="dispatch list", description="List runs.")
    add_zeo_option(parser)
    return run_command("list", parser, _list, argv)


def show_main(argv):
    """``dispatch show RUN [--json]``: steps, messages, attempts, dead letters."""
    parser = argparse.ArgumentParser(prog="dispatch show", description="Show a run.")
    parser.add_argument("run", metavar="RUN")
    parser.add_argument("--json", action="store_true", help="print JSON instead")
    add_zeo_option(parser)
    return run_command("show", parser, _show, argv)
