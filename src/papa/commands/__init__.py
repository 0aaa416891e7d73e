"""papa's command set: one table from which lookup, abbreviations and help derive.

Each command is one handler function, registered with its words, arguments,
summary and help by :func:`~papa.commands.table.command`, in the module of
its family:

- :mod:`papa.commands.sockets`: ``make socket``, ``list sockets``,
  ``remove sockets``;
- :mod:`papa.commands.values`: ``set``, ``get``, ``list values``,
  ``remove values``;
- :mod:`papa.commands.processes`: ``make process``, ``list processes``,
  ``remove processes``, ``cancel processes``;
- :mod:`papa.commands.watch`: ``watch processes``;
- :mod:`papa.commands.partitions`: ``list partitions``;
- :mod:`papa.commands.connection`: ``protocol``, ``quit``, ``exit-if-idle``;
- ``help`` is here, beside the table it reads.

Adding a command to a family is adding one decorated function to its module;
a new family module is also imported below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# Imported for their registrations (each module registers its commands).
from . import connection, partitions, processes, sockets, values, watch  # noqa: F401
from .lookup import CommandTable, Tree
from .table import PATTERN_HELP, CloseConnection, Command, Watch, command, registered

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..protocol import CommandStream

__all__ = [
    "COMMANDS",
    "PATTERN_HELP",
    "TABLE",
    "TREE",
    "CloseConnection",
    "Command",
    "CommandTable",
    "Watch",
    "command",
    "general_help",
    "lookup",
    "topic_help",
]


@command(
    "help",
    "[COMMAND…]",
    'Type "help <command>" for more information',
    "Show the commands, or the help of one command.",
    position=170,
    before_auth=True,
)
def show_help(kernel: Kernel, stream: CommandStream, arguments: list[str]) -> str:
    if arguments:
        return TABLE.topic_help(arguments)
    return TABLE.general_help()


COMMANDS: tuple[Command, ...] = registered()
TABLE = CommandTable(COMMANDS)
TREE: Tree = TABLE.tree


def lookup(
    words: list[str], allow_partial: bool = False
) -> tuple[Command | Tree, list[str]]:
    """Resolve the leading words of a request (see :meth:`CommandTable.lookup`)."""
    return TABLE.lookup(words, allow_partial)


def general_help() -> str:
    """The reply to a bare ``help``."""
    return TABLE.general_help()


def topic_help(words: list[str]) -> str:
    """The reply to ``help WORD…``."""
    return TABLE.topic_help(words)
