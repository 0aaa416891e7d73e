"""Running a kernel: in this loop (:func:`serve`), in this thread (:func:`run`)
or in a daemon thread (:func:`start_in_thread`, papa's debug mode)."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import Error
from ..security import Access
from .core import Kernel
from .listener import DEFAULT_PORT

if TYPE_CHECKING:
    from ..slurm import SlurmSettings


async def serve(
    port_or_path: int | str = DEFAULT_PORT,
    state_dir: str | None = None,
    quit_when_no_connections: bool = False,
    on_ready: Callable[[Kernel], None] | None = None,
    handle_signals: bool = False,
    slurm_settings: SlurmSettings | None = None,
    access: Access | None = None,
) -> Kernel:
    """Run a kernel until it stops; ``on_ready(kernel)`` once it listens."""
    kernel = Kernel(state_dir, quit_when_no_connections, slurm_settings, access)
    await kernel.start(port_or_path)
    if handle_signals:
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signal_number, kernel.stop)
    if on_ready is not None:
        on_ready(kernel)
    await kernel.wait_stopped()
    return kernel


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when it is installed (faster I/O), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(
    port_or_path: int | str = DEFAULT_PORT,
    state_dir: str | None = None,
    **options: Any,
) -> None:
    """Run a kernel in this thread until it stops (blocking)."""
    loop = new_event_loop()
    try:
        loop.run_until_complete(serve(port_or_path, state_dir, **options))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def start_in_thread(
    port_or_path: int | str = DEFAULT_PORT, quit_when_no_connections: bool = False
) -> threading.Thread:
    """Start a kernel in a daemon thread (papa's debug mode); return the thread.

    Raises Error if the kernel cannot listen.
    """
    ready = threading.Event()
    failure: list[BaseException] = []

    def on_ready(kernel: Kernel) -> None:
        ready.set()

    def target() -> None:
        try:
            run(
                port_or_path,
                quit_when_no_connections=quit_when_no_connections,
                on_ready=on_ready,
            )
        except BaseException as exc:  # reported to the starting thread
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=target, name="papa-kernel", daemon=True)
    thread.start()
    ready.wait()
    if failure:
        raise Error(f"Cannot start the kernel: {failure[0]}")
    return thread
