"""What every ``dispatch`` command shares: its definition (:class:`Command`),
the ``--zeo`` option, opening the database and the one error style.

A command is a module of :mod:`dispatch.cli` that defines ``COMMAND``, a
:class:`Command` made with its own ``__name__`` (the module's name is the
command's: ``dlq_check`` is ``dispatch dlq-check``, ``list_`` is ``dispatch
list``).  Its ``run(options)``
returns the exit status or raises :class:`~dispatch.errors.CommandError`,
which is printed as ``dispatch COMMAND: message``.  Exit statuses a script
can rely on:

=====  ==============================================================
0      done (``go --wait``: the run succeeded)
1      the run failed (a dead letter) or was cancelled; RUN not found
2      usage error, or a recipe that is invalid or cannot be read
3      the zeo server cannot be reached
4      ``go --wait --timeout``: the run was still going at the timeout
=====  ==============================================================
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ZODB.POSException import ConflictError

from dispatch import logfields
from dispatch.errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CommandError,
)
from dispatch.runtime import configuration
from dispatch.runtime.yamlconfig import SiteConfiguration
from dispatch.state.database import ADDRESS_VARIABLE, dispatch_state
from dispatch.state.model import Dispatch
from dispatch.state.views import RunNotFound
from zeo.address import parse_address

logger = logging.getLogger(__name__)

__all__ = [
    "ADDRESS_VARIABLE",
    "CONNECT_TIMEOUT",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "Command",
    "CommandError",
    "add_site_options",
    "add_wait_option",
    "add_zeo_option",
    "command_name",
    "dispatch_at",
    "open_database",
    "run_command",
    "site_of",
    "when",
    "zeo_address",
]

# Seconds to wait for the zeo server before saying it cannot be reached.
CONNECT_TIMEOUT = 10
DEFAULT_LOG_FORMAT = "dispatch {name}: %(levelname)s %(message)s"


def command_name(module_name: str) -> str:
    """The command a module of :mod:`dispatch.cli` defines, from its name:
    ``dlq_check`` is ``dlq-check``; a trailing ``_`` keeps a module from
    shadowing a builtin in the package (``list_`` is ``list``)."""
    return module_name.rpartition(".")[2].rstrip("_").replace("_", "-")


@dataclass(frozen=True)
class Command:
    """One ``dispatch`` command: its help beside its code."""

    # The defining module's __name__: the command is named after it.
    module: str
    # One line for ``dispatch --help``.
    summary: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    # The first line of ``dispatch NAME --help`` (default: the summary).
    description: str | None = None
    # Rewrites the arguments before they are parsed (``wrap``'s ``--``).
    prepare: Callable[[list[str]], list[str]] | None = None
    # How log records look on standard error while it runs.
    log_format: str | None = None

    @property
    def name(self) -> str:
        return command_name(self.module)

    def parser(self) -> argparse.ArgumentParser:
        """The command's argument parser."""
        parser = argparse.ArgumentParser(
            prog=f"dispatch {self.name}",
            description=self.description or self.summary,
        )
        self.add_arguments(parser)
        return parser

    def main(self, argv: Sequence[str]) -> int:
        """Run the command with *argv*; returns its exit status."""
        arguments = list(argv)
        if self.prepare is not None:
            arguments = self.prepare(arguments)
        return run_command(
            self.name, self.parser(), self.run, arguments, self.log_format
        )


def run_command(
    name: str,
    parser: argparse.ArgumentParser,
    handler: Callable[[argparse.Namespace], int],
    argv: Sequence[str],
    log_format: str | None = None,
) -> int:
    """Parse *argv*, call ``handler(options)``; map errors to exit statuses."""
    try:
        options = parser.parse_args(argv)
    except SystemExit as exit:
        return EXIT_OK if exit.code == 0 else EXIT_USAGE
    logging.basicConfig(
        format=(log_format or DEFAULT_LOG_FORMAT).format(name=name),
        level=logging.WARNING,
    )
    json_lines = os.environ.get(logfields.FORMAT_VARIABLE, "").lower() == "json"
    for root_handler in logging.getLogger().handlers:
        logfields.install(root_handler, json_lines, f"dispatch {name}")
    try:
        return handler(options)
    except CommandError as error:
        print(f"dispatch {name}: {error}", file=sys.stderr)
        return error.status
    except ConflictError as error:
        # The transaction was aborted: nothing of it was stored.
        print(
            f"dispatch {name}: another client changed the same state at the same "
            f"time; nothing was changed, try again ({error})",
            file=sys.stderr,
        )
        return EXIT_FAILED


def seconds(text: str) -> float:
    """An argparse type: a number of seconds, 0 or more (pacing options)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds"
        ) from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text} seconds: give 0 or more")
    return value


def add_wait_option(parser: argparse.ArgumentParser, help: str) -> None:
    """``-w/--wait SECONDS`` (default 0), as zocalo's pacing options."""
    parser.add_argument(
        "-w", "--wait", type=seconds, default=0.0, metavar="SECONDS", help=help
    )


def add_zeo_option(parser: Any) -> None:
    """The ``--zeo`` option every command shares (*parser* may be a group)."""
    parser.add_argument(
        "--zeo",
        metavar="ADDRESS",
        default=os.environ.get(ADDRESS_VARIABLE),
        help=f"zeo server, HOST:PORT or a socket path (default ${ADDRESS_VARIABLE})",
    )


def add_site_options(parser: argparse.ArgumentParser) -> None:
    """``-C FILE.yaml`` and ``-e ENV`` (see :func:`site_of`), for the
    commands zocalo's operators run with ``-e``."""
    configuration.add_options(parser, required=False)


def site_of(options: argparse.Namespace) -> SiteConfiguration:
    """The YAML site configuration ``-C``/``-e`` name (empty without one);
    its ``dispatch`` section's ``zeo`` becomes ``--zeo`` when none is given."""
    site = configuration.load_site(options.configure, options.environments)
    if not options.zeo:
        options.zeo = site.dispatch.get("zeo")
    return site


def zeo_address(address: str) -> Any:
    """``--zeo`` *address* read as zeo wants it (a usage error if it is bad)."""
    try:
        return parse_address(address)
    except ValueError as error:
        raise CommandError(f"--zeo {error}", EXIT_USAGE) from None


def open_database(address: str | None) -> Any:
    """A ZODB DB on the zeo server at *address* (text), or opened directly
    from the ``<zodb>`` file of a ``zodb:PATH`` address (:mod:`dispatch.direct`)."""
    if not address:
        raise CommandError(
            f"say which zeo server: --zeo HOST:PORT or set ${ADDRESS_VARIABLE}",
            EXIT_USAGE,
        )
    from dispatch import direct

    if direct.is_direct(address):
        try:
            return direct.open_direct(address)
        except ValueError as error:
            raise CommandError(f"--zeo {error}", EXIT_USAGE) from None
    import zeo
    from zeo.exceptions import ClientDisconnected

    parsed = zeo_address(address)
    try:
        return zeo.DB(parsed, wait_timeout=CONNECT_TIMEOUT)
    except ClientDisconnected as error:
        raise CommandError(
            f"cannot reach zeo at {address}: {error}", EXIT_UNREACHABLE
        ) from None


@contextmanager
def dispatch_at(address: str | None, write: bool = False) -> Iterator[Dispatch]:
    """Dispatch state on the zeo server at *address*, for one transaction
    (committed if *write*); the connection is closed on the way out.  A run
    asked for that is not there (:class:`~dispatch.state.views.RunNotFound`)
    is a :class:`CommandError` with status 1, for every command alike."""
    database = open_database(address)
    try:
        with dispatch_state(database, write) as dispatch:
            yield dispatch
    except RunNotFound as error:
        raise CommandError(str(error), EXIT_FAILED) from None
    finally:
        database.close()


def when(timestamp: float | None) -> str:
    """A time as commands print it (``-`` for none)."""
    if not timestamp:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))
