"""The kernel's listening socket: accepting connections, one Session each.

The kernel listens on 127.0.0.1 (port 20202 unless told otherwise) or on a
Unix socket made 0600: whoever can connect can run any program as the
kernel's user.  Another address needs TLS or a token (:mod:`papa.security`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import TYPE_CHECKING

from ..errors import Error
from ..session import Session
from ..sockets import remove_socket_file, socket_file_exists

if TYPE_CHECKING:
    from .core import Kernel

log = logging.getLogger(__name__)

DEFAULT_PORT = 20202
LOOPBACK = "127.0.0.1"
# Connections waiting to be accepted while the loop is busy: a burst of
# clients queues here instead of being refused.
BACKLOG = 128


class Listener:
    """Accepts connections for ``kernel`` and hands each to a new Session."""

    def __init__(self, kernel: Kernel):
        self.kernel = kernel
        self.address: str | tuple[str, int] | None = None
        self._server: asyncio.AbstractServer | None = None
        self._unix_path: str | None = None

    async def listen(self, port_or_path: int | str = DEFAULT_PORT) -> None:
        """Bind a TCP port (an int) on the kernel's host, or a Unix socket (a path)."""
        loop = asyncio.get_running_loop()
        access = self.kernel.access

        def new_session() -> Session:
            return Session(self.kernel)

        if isinstance(port_or_path, str):
            listener = bind_unix(port_or_path)
            self._unix_path = port_or_path
            self._server = await loop.create_unix_server(
                new_session, sock=listener, ssl=access.ssl_context
            )
            self.address = port_or_path
        else:
            try:
                self._server = await loop.create_server(
                    new_session,
                    access.host,
                    port_or_path,
                    reuse_address=True,
                    backlog=BACKLOG,
                    ssl=access.ssl_context,
                )
            except OSError as exc:
                raise Error(f"Cannot listen on {access.host}:{port_or_path}: {exc}")
            self.address = self._server.sockets[0].getsockname()[:2]
        log.info("papa kernel listening on %s", self.address)

    def close(self) -> None:
        """Stop accepting; the Unix socket's file goes too."""
        if self._server is not None:
            self._server.close()
        if self._unix_path:
            remove_socket_file(self._unix_path)


def bind_unix(path: str) -> socket.socket:
    """A listening Unix socket at ``path``, mode 0600.

    A stale socket file (nothing answers) is replaced; a live one means a
    kernel is already there; any other file is never touched.
    """
    if not os.path.isabs(path):
        raise Error(f"The Unix socket path must be absolute, not {path!r}")
    if socket_file_exists(path):
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)
        else:
            raise Error(f"A kernel is already listening on {path}")
        finally:
            probe.close()
    listener = socket.socket(socket.AF_UNIX)
    try:
        listener.bind(path)
        os.chmod(path, 0o600)
        listener.listen(BACKLOG)
    except OSError as exc:
        listener.close()
        raise Error(f"Cannot listen on {path}: {exc}")
    return listener
