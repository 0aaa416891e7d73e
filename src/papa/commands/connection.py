"""Commands about the connection itself: ``auth``, ``protocol``, ``quit``,
``exit-if-idle``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import Error
from ..security import AUTH_ATTEMPTS
from .table import CloseConnection, command

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..protocol import CommandStream


@command(
    "protocol",
    "[escapes]",
    "Show or switch on protocol extensions",
    """Show the protocol extensions this kernel offers, or switch one on for
this connection.

    escapes  backslash escapes in requests (\\n newline, \\\\ backslash) and in
             value, socket and process listings, so newlines and values
             beginning with 'Error:' travel intact""",
    position=140,
    before_auth=True,
)
def protocol(kernel: Kernel, stream: CommandStream, arguments: list[str]) -> str:
    if not arguments:
        return "escapes"
    if [word.lower() for word in arguments] == ["escapes"]:
        stream.escapes = True
        return "escapes on"
    raise Error(f"Unknown protocol extension {' '.join(arguments)!r}; known: escapes")


@command(
    "quit",
    "",
    "Close the client session",
    "Close this connection.",
    position=150,
    before_auth=True,
)
def quit(kernel: Kernel, stream: CommandStream, arguments: list[str]) -> None:
    raise CloseConnection(b"ok\n")


@command(
    "auth",
    "TOKEN",
    "Log in to a kernel that has a token",
    "Send the kernel's token (its token-file).  Until then a kernel with a\n"
    f"token answers only help, protocol and quit; {AUTH_ATTEMPTS} wrong tokens end\n"
    "the connection.",
    position=145,
    extension=True,
    before_auth=True,
)
def auth(kernel: Kernel, stream: CommandStream, arguments: list[str]) -> str:
    if kernel.access.token is None:
        return "ok (this kernel has no token)"
    if len(arguments) == 1 and kernel.access.token_matches(arguments[0]):
        stream.authenticated = True
        return "ok"
    stream.auth_failures += 1
    if stream.auth_failures >= AUTH_ATTEMPTS:
        raise CloseConnection(b"Error: Wrong token; closing the connection\n")
    raise Error("Wrong token")


@command(
    "exit-if-idle",
    "",
    "Exit papa if there are no processes, sockets or values",
    "Exit the kernel once no connection is left, if it holds no process,\n"
    "socket or value.  Cannot be abbreviated.",
    position=160,
    abbreviable=False,
)
def exit_if_idle(kernel: Kernel, stream: CommandStream, arguments: list[str]) -> str:
    if not kernel.is_idle():
        return "not idle"
    kernel.request_exit()
    raise CloseConnection(b"Exiting papa!\n> ")
