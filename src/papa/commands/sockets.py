"""The socket commands: ``make socket``, ``list sockets``, ``remove sockets``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .table import PATTERN_HELP, command, listing

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..protocol import CommandStream
    from ..sockets import ManagedSocket


@command(
    "make socket",
    "NAME [family=F] [type=T] [backlog=N] [path=P] [umask=U] [host=H] "
    "[port=N] [interface=I] [reuseport=1]",
    "Create a socket to be used by processes",
    """Create a named socket the kernel holds for its processes.

Options:
    family    unix, inet or inet6 (unix when path is given, else inet)
    type      stream, dgram, raw, rdm or seqpacket (default stream)
    backlog   listen backlog (default 5)
    path      absolute path of a Unix socket; an existing socket file is
              replaced, any other file is left alone and refused
    umask     umask of the socket file, as a DECIMAL number (papa's rule)
    host      address to bind (default 127.0.0.1, or 0.0.0.0 with interface)
    port      port to bind (default 0: the system picks one)
    interface bind to one network interface only (SO_BINDTODEVICE)
    reuseport each process using $(socket.NAME.fileno) gets its own socket
              on the same port (SO_REUSEPORT)

Making a socket again with the same options returns the existing one.
Examples:
    make socket web port=8080
    make socket app path=/run/app.sock umask=63""",
    position=10,
)
def make_socket(kernel: Kernel, stream: CommandStream, arguments: list[str]) -> str:
    return socket_line(kernel.make_socket(arguments), stream)


@command(
    "list sockets",
    "[NAME…]",
    "List sockets by name",
    "List sockets, one line each." + PATTERN_HELP,
    position=30,
)
def list_sockets(kernel: Kernel, stream: CommandStream, arguments: list[str]) -> str:
    return listing(
        kernel.sockets, arguments, lambda name, managed: socket_line(managed, stream)
    )


@command(
    "remove sockets",
    "[NAME…]",
    "Close and remove sockets by name",
    "Close sockets; processes that inherited them keep them.\n"
    "With no name, every socket is removed (papa's rule)." + PATTERN_HELP,
    position=60,
)
def remove_sockets(kernel: Kernel, stream: CommandStream, arguments: list[str]) -> None:
    kernel.remove_sockets(arguments)


def socket_line(managed: ManagedSocket, stream: CommandStream) -> str:
    """A socket's listing line, its path escaped when the connection asked."""
    line = managed.line()
    if stream.escapes and managed.spec.path:
        line = line.replace(
            f"path={managed.spec.path}", f"path={stream.quote(managed.spec.path)}"
        )
    return line
