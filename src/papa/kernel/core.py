"""The kernel: its tables, served by a listener, until it is told to stop.

:class:`Kernel` is the :class:`~papa.kernel.tables.Tables` plus their
lifecycle: restoring the state directory, listening
(:class:`~papa.kernel.listener.Listener`), keeping track of connections and
stopping, on a signal, on ``exit-if-idle`` or when the last connection of a
``quit_when_no_connections`` kernel goes.

One asyncio loop does everything: accepting connections, running each
connection's :class:`~papa.session.Session`, reading children's output and
seeing their exits.  There is no thread per client or per child and no lock:
handlers run one at a time on the loop, so the tables are consistent without
one, and spawning never waits for another client.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..security import Access
from .listener import DEFAULT_PORT, Listener
from .tables import Tables

if TYPE_CHECKING:
    from ..session import Session
    from ..slurm import SlurmSettings
    from ..slurm.poller import JobPoller

log = logging.getLogger(__name__)


class Kernel(Tables):
    """The kernel's tables and its listening server."""

    def __init__(
        self,
        state_dir: str | None = None,
        quit_when_no_connections: bool = False,
        slurm_settings: SlurmSettings | None = None,
        access: Access | None = None,
    ):
        super().__init__(state_dir, slurm_settings)
        # Who may connect: the address, TLS, a token (papa.security).
        self.access = access if access is not None else Access()
        self.access.check()
        self.sessions: set[Session] = set()
        self.quit_when_no_connections = quit_when_no_connections
        self.exit_requested = False
        self.listener = Listener(self)
        self._stopped: asyncio.Event | None = None
        self._had_connection = False

    @property
    def address(self) -> str | tuple[str, int] | None:
        """Where the kernel listens: a Unix socket path or (host, port)."""
        return self.listener.address

    @property
    def slurm_settings(self) -> SlurmSettings | None:
        """The Slurm settings given or read so far (None until a job needs them)."""
        return self.slurm_jobs.settings

    @property
    def slurm_poller(self) -> JobPoller | None:
        """The one squeue poller of this kernel, once a job made it."""
        return self.slurm_jobs.poller

    async def start(self, port_or_path: int | str = DEFAULT_PORT) -> None:
        """Restore the state directory, then bind and start accepting."""
        self._stopped = asyncio.Event()
        self.restore()
        await self.listener.listen(port_or_path)

    async def wait_stopped(self) -> None:
        assert self._stopped is not None, "the kernel was never started"
        await self._stopped.wait()

    def stop(self) -> None:
        """Stop listening and release sockets; children keep running."""
        if self._stopped is None or self._stopped.is_set():
            return
        log.info("papa kernel stopping")
        self.listener.close()
        for session in list(self.sessions):
            session.abort()
        self.close()
        self._stopped.set()

    def session_opened(self, session: Session) -> None:
        self.sessions.add(session)
        self._had_connection = True
        self.exit_requested = False  # papa: a new connection cancels the exit

    def session_closed(self, session: Session) -> None:
        self.sessions.discard(session)
        if self.sessions:
            return
        if self.exit_requested and self.is_idle():
            self.stop()
        elif self.quit_when_no_connections and self._had_connection:
            self.stop()

    def request_exit(self) -> None:
        """``exit-if-idle``: stop once the last connection is gone, if idle then."""
        self.exit_requested = True
