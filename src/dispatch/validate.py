"""Old home of ``dispatch validate``, now :mod:`dispatch.cli.validate`."""

from dispatch.cli import validate as _command
from dispatch.errors import EXIT_OK, EXIT_USAGE

EXIT_INVALID = _command.EXIT_INVALID
__all__ = ["EXIT_INVALID", "EXIT_OK", "EXIT_USAGE", "validate_main"]


# The entry function of the old layout is the command's ``main``.
validate_main = _command.COMMAND.main
