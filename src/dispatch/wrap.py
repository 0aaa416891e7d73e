"""Old home of ``dispatch wrap``, now :mod:`dispatch.cli.wrap`."""

from dispatch.cli import wrap as _command


def wrap_main(argv: list[str]) -> int:
    """``dispatch wrap --run ID --step N -- PROGRAM ARGS...``."""
    return _command.COMMAND.main(argv)
