"""The one error a ``dispatch`` command reports: a message and an exit status.

Raised by the command modules (:mod:`dispatch.cli`) and by the runtime
where what went wrong is the user's to fix (a service name, a configuration
file); printed as ``dispatch COMMAND: message`` and the command exits with
its status.  The statuses are those scripts rely on (``dispatch --help``
and docs/dispatch.rst list them).
"""

from __future__ import annotations

EXIT_OK = 0
# A run failed or was cancelled, something asked for was not found, or a
# check found a problem (dead letters, invalid recipes).
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_TIMEOUT = 4


class CommandError(Exception):
    """A failure to report as ``dispatch COMMAND: message`` with a status."""

    def __init__(self, message: str, status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.status = status
