"""The kernel: named sockets, values and processes behind one listening socket.

Run it with ``papa`` or ``python -m papa``; in Python, :func:`run` (blocking),
:func:`serve` (in a running loop) or :func:`start_in_thread`.

Where things are:

- :mod:`papa.kernel.tables`: the values, sockets and processes, and what the
  commands do to them (and the state directory kept up to date);
- :mod:`papa.kernel.slurmjobs`: Slurm jobs made and re-adopted, the one
  squeue poller;
- :mod:`papa.kernel.listener`: the listening socket, a
  :class:`~papa.session.Session` per connection;
- :mod:`papa.kernel.core`: :class:`Kernel`, the tables with their lifecycle;
- :mod:`papa.kernel.running`: running a kernel in a loop or a thread.

Security: the kernel listens on 127.0.0.1 or on a Unix socket made 0600.
Whoever can connect can run any program as the kernel's user.
"""

from ..patterns import match
from .core import Kernel
from .listener import DEFAULT_PORT, LOOPBACK
from .running import new_event_loop, run, serve, start_in_thread
from .tables import CANCEL_GRACE_SECONDS, Tables

__all__ = [
    "CANCEL_GRACE_SECONDS",
    "DEFAULT_PORT",
    "LOOPBACK",
    "Kernel",
    "Tables",
    "match",
    "new_event_loop",
    "run",
    "serve",
    "start_in_thread",
]
