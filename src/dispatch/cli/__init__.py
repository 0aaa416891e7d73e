"""The ``dispatch`` command: one module of this package per sub-command.

Each command module defines ``COMMAND`` (see :mod:`dispatch.cli.base`); the
table of commands is the list of those modules, found by name without
importing them, so ``dispatch validate`` does not pay for ZODB imports.
``dispatch --help`` imports them all for their summaries.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Sequence

from dispatch.cli.base import EXIT_OK, EXIT_USAGE, Command, command_name

USAGE = "usage: dispatch COMMAND [ARGUMENTS...]  (commands: {commands})"
# Modules of this package that are not commands.
SUPPORT_MODULES = frozenset({"base", "progress"})


def command_modules() -> dict[str, str]:
    """``{command name: module name}`` of every command module."""
    found = {}
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("_") or module.name in SUPPORT_MODULES:
            continue
        found[command_name(module.name)] = f"{__name__}.{module.name}"
    return found


def load_command(name: str) -> Command | None:
    """The command *name* (imported now), or None when there is none."""
    module_name = command_modules().get(name)
    if module_name is None:
        return None
    command: Command = importlib.import_module(module_name).COMMAND
    return command


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dispatch`` console script; returns the exit status."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    modules = command_modules()
    names = ", ".join(sorted(modules))
    if not arguments or arguments[0] in ("-h", "--help", "help"):
        print(USAGE.format(commands=names))
        for name in sorted(modules):
            command = load_command(name)
            assert command is not None  # listed just now
            print(f"  {name:<10} {command.summary}")
        return EXIT_OK if arguments else EXIT_USAGE
    command = load_command(arguments[0])
    if command is None:
        print(
            f"dispatch: unknown command {arguments[0]!r} (known commands: {names}; "
            f"see `dispatch --help`)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return command.main(arguments[1:])
