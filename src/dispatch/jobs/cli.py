"""``dispatch jobs``: look at job runs recorded in a zeo database.

Sub-commands::

    dispatch jobs list                       # names of recorded runs
    dispatch jobs show RUN_NAME [--json]     # status, attempts, last error per job
    dispatch jobs graph RUN_NAME [--format svg] [--output FILE]

The database is a zeo server (``--zeo HOST:PORT`` or a Unix socket path,
default ``$DISPATCH_ZEO``) or, read-only, a FileStorage file (``--file``).
"""

import argparse
import json
import logging
import os
import sys

from zeo.address import parse_address

from . import graph as graph_module
from . import persist, view

logger = logging.getLogger(__name__)

ADDRESS_VARIABLE = "DISPATCH_ZEO"
EXIT_USAGE = 2
EXIT_NOT_FOUND = 1
# Seconds to wait for the zeo server before saying it cannot be reached.
CONNECT_TIMEOUT = 10


def _parser():
    parser = argparse.ArgumentParser(
        prog="dispatch jobs", description="Look at recorded job runs."
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--zeo",
        metavar="ADDRESS",
        default=os.environ.get(ADDRESS_VARIABLE),
        help=f"zeo server, HOST:PORT or a socket path (default ${ADDRESS_VARIABLE})",
    )
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
    return parser


def _open_storage(options):
    if options.file:
        from ZODB.FileStorage import FileStorage

        if not os.path.exists(options.file):
            raise SystemExit(f"dispatch jobs: no such FileStorage file: {options.file}")
        return FileStorage(options.file, read_only=True)
    if not options.zeo:
        raise SystemExit(
            f"dispatch jobs: say which database: --zeo HOST:PORT, --file PATH, "
            f"or set ${ADDRESS_VARIABLE}."
        )
    import zeo
    from zeo.exceptions import ClientDisconnected

    try:
        return zeo.client(
            parse_address(options.zeo), read_only=True, wait_timeout=CONNECT_TIMEOUT
        )
    except ClientDisconnected as error:
        raise SystemExit(f"dispatch jobs: cannot reach zeo: {error}") from None


def _open_database(options):
    """A read-only ZODB DB, or None when the database has nothing in it yet."""
    from ZODB import DB
    from ZODB.POSException import ReadOnlyError

    storage = _open_storage(options)
    try:
        return DB(storage)
    except ReadOnlyError:
        # An empty database: ZODB wanted to create the root object.
        storage.close()
        return None


def _show(run, as_json, out):
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


def _graph(run, fmt, output):
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


def jobs_main(argv=None):
    """Entry point of ``dispatch jobs``; returns the exit status."""
    options = _parser().parse_args(argv)
    database = _open_database(options)
    if database is None:
        if options.command == "list":
            return 0
        print(
            f"dispatch jobs: no run named {options.run_name!r} (the database is empty)",
            file=sys.stderr,
        )
        return EXIT_NOT_FOUND
    try:
        connection = database.open()
        try:
            if options.command == "list":
                for name in persist.run_names(connection):
                    print(name)
                return 0
            run = persist.load_run(connection, options.run_name)
            if run is None:
                print(
                    f"dispatch jobs: no run named {options.run_name!r} "
                    f"(see `dispatch jobs list`)",
                    file=sys.stderr,
                )
                return EXIT_NOT_FOUND
            if options.command == "show":
                _show(run, options.json, sys.stdout)
                return 0
            try:
                _graph(run, options.format, options.output)
            except graph_module.GraphRenderError as error:
                print(f"dispatch jobs: {error}", file=sys.stderr)
                return EXIT_NOT_FOUND
            return 0
        finally:
            connection.close()
    finally:
        database.close()
