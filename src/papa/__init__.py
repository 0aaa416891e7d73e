"""papa — a process kernel: named sockets, values and processes.

This is the client library, with papa 1.0.6's names::

    import papa
    with papa.Papa() as p:                  # starts a kernel if none answers
        p.make_socket("web", port=8080)
        p.make_process("web", "/usr/bin/python3",
                       args=["-m", "http.server", "--fd", "$(socket.web.fileno)"])
        with p.watch_processes("web") as watcher:
            while watcher:
                out, err, closed = watcher.read()

The kernel is ``papa.kernel`` (run it with ``papa`` or ``python -m papa``).
Anyone who can connect to a kernel can run programs as the kernel's user.
"""

from .client import (
    DEVNULL,
    PIPE,
    STDOUT,
    Papa,
    set_debug_mode,
    set_default_connection_timeout,
    set_default_path,
    set_default_port,
)
from .errors import Error, RequestError
from .watcher import ProcessOutput, WatchBatch, Watcher

__all__ = [
    "DEVNULL",
    "PIPE",
    "STDOUT",
    "Error",
    "Papa",
    "ProcessOutput",
    "RequestError",
    "WatchBatch",
    "Watcher",
    "set_debug_mode",
    "set_default_connection_timeout",
    "set_default_path",
    "set_default_port",
]
