"""The console's way to the papa kernel: a client per request in a worker
thread (papa's client blocks), never starting a kernel of its own, and the
partition table cached for a few seconds (moss ran sinfo on every render of
its page; a busy page must not make a busy Slurm controller).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

import papa
from dispatch.web.errors import ConsoleError

logger = logging.getLogger(__name__)

# Seconds a partition table read from the kernel is shown again.
PARTITIONS_MAX_AGE = 5.0
# Seconds to wait for the kernel to accept a connection.
CONNECT_TIMEOUT = 5.0
DEFAULT_PORT = 20202
# Lines of a job's output its page shows.
TAIL_LINES = 200

Result = TypeVar("Result")


class Kernel:
    """The papa kernel at *address* (a port on 127.0.0.1 or a socket path;
    None: papa's default port)."""

    def __init__(self, address: int | str | None) -> None:
        self.address = address if address is not None else DEFAULT_PORT
        self._partitions: tuple[float, dict[str, dict[str, Any]]] | None = None
        self._lock = asyncio.Lock()

    def _client(self) -> papa.Papa:
        # A refused connection is known at once; Papa() would try again
        # until its timeout.
        family = socket.AF_UNIX if isinstance(self.address, str) else socket.AF_INET
        target = (
            self.address
            if isinstance(self.address, str)
            else (
                "127.0.0.1",
                self.address,
            )
        )
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.settimeout(CONNECT_TIMEOUT)
            try:
                probe.connect(target)
            except OSError:
                raise papa.Error("Could not connect to Papa") from None
        # host= keeps Papa() from starting a kernel where none answers.
        return papa.Papa(self.address, CONNECT_TIMEOUT, host="127.0.0.1")

    async def call(self, work: Callable[[papa.Papa], Result]) -> Result:
        """``work(client)`` in a worker thread; 503 when no kernel answers."""

        def run() -> Result:
            with self._client() as client:
                return work(client)

        try:
            return await asyncio.get_running_loop().run_in_executor(None, run)
        except papa.Error as error:
            if "Could not connect" in str(error):
                raise ConsoleError(
                    503,
                    f"no papa kernel answers at {self.address}: start it "
                    "(see docs/papa.rst) or set the configuration's papa key",
                ) from None
            raise

    async def partitions(self) -> dict[str, dict[str, Any]]:
        """``list partitions``, at most PARTITIONS_MAX_AGE seconds old."""
        async with self._lock:
            now = time.monotonic()
            if self._partitions and now - self._partitions[0] < PARTITIONS_MAX_AGE:
                return self._partitions[1]
            table = await self.call(lambda client: client.list_partitions())
            self._partitions = (time.monotonic(), table)
            return table


def peek_output(client: papa.Papa, name: str, lines: int = TAIL_LINES) -> list[str]:
    """The last *lines* lines of process *name*'s output (stdout and stderr),
    left in the kernel (papa's ``peek``); none when it has gone or the
    kernel cannot peek."""
    try:
        return client.peek(name, lines)
    except papa.Error as error:
        logger.debug("no output of %s: %s", name, error)
        return []
