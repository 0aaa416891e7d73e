"""One row of papa's command table, how a handler registers it, what it answers.

A command is one function in a family module (``papa.commands.values`` and
so on) under the :func:`command` decorator, which carries everything else
about it: its words, arguments, summary and help text.  The parser, the
abbreviations and ``help`` are all derived from those rows
(:mod:`papa.commands.lookup`), so adding a command is adding one decorated
function.

A handler is called as ``handler(kernel, stream, arguments)``: the kernel's
tables, the connection's sans-IO :class:`~papa.protocol.CommandStream`
(escapes on or off) and the words after the command.  It never sees the
transport; it answers with one of the outcomes below and the session
(:mod:`papa.session`) turns that into bytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, TypeAlias, TypeVar

from ..patterns import match

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..process import ManagedProcess
    from ..protocol import CommandStream

PATTERN_HELP = """
Names may end in '*' to match every name with that prefix ('*' alone matches
all).  Examples: nginx, worker.*"""


class CloseConnection(Exception):
    """Raised by a handler: send ``final`` (if any) and close the connection."""

    def __init__(self, final: bytes = b""):
        super().__init__()
        self.final = final


@dataclasses.dataclass(frozen=True)
class Watch:
    """An outcome: send ``preamble`` as a line, then stream ``targets``' output.

    The session runs the streaming loop (it waits on the client's
    acknowledgements); the handler only says what to watch.
    """

    preamble: str
    targets: dict[str, ManagedProcess]


# What a handler returns: a reply payload (papa adds the newline and the
# prompt), None for an empty reply, a Watch, or an awaitable payload for a
# command whose reply waits (cancel processes).  Raising papa.errors.Error
# makes an "Error:" reply; raising CloseConnection hangs up.
Outcome: TypeAlias = "str | None | Watch | Awaitable[str]"
Handler: TypeAlias = "Callable[[Kernel, CommandStream, list[str]], Outcome]"


@dataclasses.dataclass(frozen=True)
class Command:
    """One row of the command table."""

    words: tuple[str, ...]
    arguments: str
    summary: str
    help: str
    handler: Handler
    # Where the command stands in the list a bare "help" prints: papa's
    # order, with our extensions after "watch processes".
    position: int
    abbreviable: bool = True
    # Our additions to papa's set lose every abbreviation contest against
    # papa's own words, so "l p" stays "list processes".
    extension: bool = False
    # Answered before "auth" on a kernel with a token (help, protocol, quit).
    before_auth: bool = False

    @property
    def name(self) -> str:
        return " ".join(self.words)


_REGISTERED: list[Command] = []


def command(
    name: str,
    arguments: str,
    summary: str,
    help: str,
    *,
    position: int,
    abbreviable: bool = True,
    extension: bool = False,
    before_auth: bool = False,
) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of command ``name``."""

    def register(handler: Handler) -> Handler:
        _REGISTERED.append(
            Command(
                tuple(name.split(" ")),
                arguments,
                summary,
                help,
                handler,
                position,
                abbreviable,
                extension,
                before_auth,
            )
        )
        return handler

    return register


Entry = TypeVar("Entry")


def listing(
    table: Mapping[str, Entry], patterns: list[str], line: Callable[[str, Entry], str]
) -> str:
    """The reply of a ``list`` command: ``line(name, entry)`` of every entry
    of *table* that *patterns* match, one a line, sorted as papa sorts them."""
    return "\n".join(sorted(line(name, table[name]) for name in match(table, patterns)))


def registered() -> tuple[Command, ...]:
    """Every registered command, in the order ``help`` lists them."""
    return tuple(sorted(_REGISTERED, key=lambda row: row.position))
