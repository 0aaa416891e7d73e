"""Old home of ``dispatch jobs``, now :mod:`dispatch.cli.jobs`.

``jobs_main`` keeps its old contract for programs that call it: a database
that cannot be opened raises ``SystemExit`` with the message, as before
(the ``dispatch jobs`` command prints it and exits with status 1, or 3 when
the zeo server cannot be reached).
"""

import sys
from collections.abc import Sequence

from dispatch.cli import base
from dispatch.cli import jobs as _command
from dispatch.errors import CommandError
from zeo.address import parse_address

__all__ = ["CONNECT_TIMEOUT", "jobs_main", "parse_address"]

# Read when jobs_main runs, so that a caller may shorten it.
CONNECT_TIMEOUT = base.CONNECT_TIMEOUT


def jobs_main(argv: Sequence[str] | None = None) -> int:
    """``dispatch jobs`` with *argv*; returns the exit status."""
    options = _command.COMMAND.parser().parse_args(argv)
    try:
        return _command.look(options, CONNECT_TIMEOUT)
    except _command.DatabaseUnavailable as error:
        raise SystemExit(f"dispatch jobs: {error}") from None
    except CommandError as error:
        print(f"dispatch jobs: {error}", file=sys.stderr)
        return error.status
