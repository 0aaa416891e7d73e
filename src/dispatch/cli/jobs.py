"""``dispatch jobs``: look at job runs recorded in a zeo database.

Sub-commands::

    dispatch jobs list                       # names of recorded runs
    dispatch jobs show RUN_NAME [--json]     # status, attempts, last error per job
    dispatch jobs graph RUN_NAME [--format svg] [--output FILE]

The database is a zeo server (``--zeo HOST:PORT`` or a Unix socket path,
default ``$DISPATCH_ZEO``) or, read-only, a FileStorage file (``--file``).
As with every ``dispatch`` command, naming no database is a usage error
(status 2) and an unreachable zeo server exits with status 3; another
failure to open the database exits with status 1, as do unknown run names.  The job engine itself is :mod:`dispatch.jobs`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import IO, Any

from dispatch.cli import base
from dispatch.jobs import graph as graph_module
from dispatch.jobs import persist, view

logger = logging.getLogger(__name__)

EXIT_NOT_FOUND = base.EXIT_FAILED


class DatabaseUnavailable(base.CommandError):
    """The database cannot be opened (status 1; 2 when none is named and 3
    for an unreachable zeo server, as for every ``dispatch`` command)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    base.add_zeo_option(source)
    source.add_argument(
        "--file", metavar="PATH", help="read a FileStorage file directly, read-only"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    commands.add_parser("list", help="names of the recorded runs")
    show = commands.add_parser("show", help="status, attempts and last error per job")
    show.add_argument("run_name", metavar="RUN_NAME")
    show.add_argument("--json", action="store_true", help="print JSON instead")
    draw = commands.add_parser("graph", help="the run's job graph, coloured by status")
    draw.add_argument("run_name", metavar="RUN_NAME")
    draw.add_argument(
        "--format",
        default="dot",
        help="dot or json (built in), or any graphviz format: svg, png, pdf...",
    )
    draw.add_argument("--output", "-o", help="write here instead of standard output")


def _open_storage(options: argparse.Namespace, connect_timeout: float) -> Any:
    if options.file:
        from ZODB.FileStorage import FileStorage

        if not os.path.exists(options.file):
            raise DatabaseUnavailable(f"no such FileStorage file: {options.file}")
        return FileStorage(options.file, read_only=True)
    if not options.zeo:
        raise DatabaseUnavailable(
            f"say which database: --zeo HOST:PORT, --file PATH, "
            f"or set ${base.ADDRESS_VARIABLE}.",
            base.EXIT_USAGE,
        )
    import zeo
    from zeo.exceptions import ClientDisconnected

    address = base.zeo_address(options.zeo)
    try:
        return zeo.client(address, read_only=True, wait_timeout=connect_timeout)
    except ClientDisconnected as error:
        raise DatabaseUnavailable(
            f"cannot reach zeo: {error}", base.EXIT_UNREACHABLE
        ) from None


def _open_database(options: argparse.Namespace, connect_timeout: float) -> Any:
    """A read-only ZODB DB, or None when the database has nothing in it yet."""
    from ZODB import DB
    from ZODB.POSException import ReadOnlyError

    storage = _open_storage(options, connect_timeout)
    try:
        return DB(storage)
    except ReadOnlyError:
        # An empty database: ZODB wanted to create the root object.
        storage.close()
        return None


def _show(run: Any, as_json: bool, out: IO[str]) -> None:
    rows = view.run_rows(run)
    sessions = list(run.sessions)
    if as_json:
        document = {
            "run": run.name,
            "state": run.state,
            "phase": run.phase,
            "sessions": sessions,
            "jobs": rows,
            "cleanup_errors": [list(error) for error in run.cleanup_errors],
        }
        out.write(json.dumps(document, indent=2, default=str) + "\n")
        return
    last = sessions[-1] if sessions else {}
    out.write(
        f"run {run.name}: {run.state}, session {last.get('number', '-')}, "
        f"phase {run.phase}\n"
    )
    width = max([len("JOB")] + [len(row["name"]) for row in rows])
    out.write(f"{'JOB':<{width}}  {'STATUS':<17}  {'ATTEMPTS':>8}  LAST ERROR\n")
    for row in rows:
        detail = row["last_error"] or ""
        if row["status"] == "blocked" and row["blocked_by"]:
            detail = "blocked by " + ", ".join(row["blocked_by"])
        if not row["in_graph"]:
            detail = (detail + " (no longer in the graph)").strip()
        out.write(
            f"{row['name']:<{width}}  {row['status']:<17}  {row['attempts']:>8}  "
            f"{detail}".rstrip()
            + "\n"
        )
    for name, error in run.cleanup_errors:
        out.write(f"cleanup of {name} failed: {error}\n")


def _graph(run: Any, fmt: str, output: str | None) -> None:
    graph, colours = view.run_graph(run)
    if fmt == "json":
        nodes = {name: {"colour": colour} for name, colour in colours.items()}
        for row in view.run_rows(run):
            nodes.setdefault(row["name"], {})["status"] = row["status"]
        data = graph.to_json(nodes).encode()
    else:
        dot_text = graph.to_dot(colours)
        data = dot_text.encode() if fmt == "dot" else graph_module.render(dot_text, fmt)
    if output:
        with open(output, "wb") as stream:
            stream.write(data)
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


def look(
    options: argparse.Namespace, connect_timeout: float = base.CONNECT_TIMEOUT
) -> int:
    """Do what *options* ask; a run that is not there, or a graph that
    cannot be drawn, is a :class:`~dispatch.errors.CommandError` (status 1)."""
    database = _open_database(options, connect_timeout)
    if database is None:
        if options.command == "list":
            return base.EXIT_OK
        raise base.CommandError(
            f"no run named {options.run_name!r} (the database is empty)",
            EXIT_NOT_FOUND,
        )
    try:
        connection = database.open()
        try:
            if options.command == "list":
                for name in persist.run_names(connection):
                    print(name)
                return base.EXIT_OK
            run = persist.load_run(connection, options.run_name)
            if run is None:
                raise base.CommandError(
                    f"no run named {options.run_name!r} (see `dispatch jobs list`)",
                    EXIT_NOT_FOUND,
                )
            if options.command == "show":
                _show(run, options.json, sys.stdout)
                return base.EXIT_OK
            try:
                _graph(run, options.format, options.output)
            except graph_module.GraphRenderError as error:
                raise base.CommandError(str(error), EXIT_NOT_FOUND) from None
            return base.EXIT_OK
        finally:
            connection.close()
    finally:
        database.close()


def run(options: argparse.Namespace) -> int:
    # Read now, not when this module was imported, as the other commands do.
    return look(options, base.CONNECT_TIMEOUT)


COMMAND = base.Command(
    __name__,
    summary="look at recorded job runs: list, show, graph",
    description="Look at recorded job runs.",
    add_arguments=add_arguments,
    run=run,
)
