"""Old home of ``dispatch wrap``, now :mod:`dispatch.cli.wrap`."""

from dispatch.cli import wrap as _command

# The entry function of the old layout is the command's ``main``.
wrap_main = _command.COMMAND.main
