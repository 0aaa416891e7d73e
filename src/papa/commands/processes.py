"""The process commands: ``make process``, ``list processes``,
``remove processes`` and our ``cancel processes``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .table import PATTERN_HELP, Watch, command, listing

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..protocol import CommandStream


@command(
    "make process",
    "NAME [option=value…] EXECUTABLE [ARGUMENT…]",
    "Launch a process",
    """Launch a process and capture its output.

Options (before the executable):
    working_dir  absolute directory to start in (default: the kernel's)
    uid, gid     user and group (name or number) to run as
    bufsize      output kept for watchers, e.g. 64k or 1m (default 1m);
                 0 captures nothing
    stdout       0 sends stdout to /dev/null
    stderr       0 sends stderr to /dev/null, stdout merges it into stdout
    spill        1 writes output beyond bufsize to a file instead of
                 dropping it, so a slow watcher loses nothing
    watch        1 replies with the process line, then watches it
    shell        1 runs the command through /bin/sh
    env.NAME     an environment variable; the environment is exactly the
                 env. options given (none: an empty environment)
    rlimit.NAME  a resource limit (soft and hard), e.g. rlimit.nofile=1024

Arguments may contain $(socket.NAME.port) and $(socket.NAME.fileno).
Making a process again with the same options returns the existing one.
Examples:
    make process web bufsize=64k /usr/bin/python3 -m http.server $(socket.web.port)
    make process sleeper env.PATH=/usr/bin sleep 60""",
    position=20,
)
def make_process(
    kernel: Kernel, stream: CommandStream, arguments: list[str]
) -> str | Watch:
    process, watch = kernel.make_process(arguments)
    line = process.line(stream.quote)
    if not watch:
        return line
    return Watch(line, {process.name: process})


@command(
    "list processes",
    "[NAME…]",
    "List processes by name",
    "List processes, one line each (running or finished, until the\n"
    "output is consumed or the process removed)." + PATTERN_HELP,
    position=40,
)
def list_processes(kernel: Kernel, stream: CommandStream, arguments: list[str]) -> str:
    quote = stream.quote
    return listing(
        kernel.processes, arguments, lambda name, process: process.line(quote)
    )


@command(
    "remove processes",
    "[NAME…]",
    "Stop keeping the output of processes by name",
    "Stop keeping the output of processes.  A finished process goes at once,\n"
    "a running one when it ends; it is never killed.\n"
    "With no name, every process is removed (papa's rule)." + PATTERN_HELP,
    position=70,
)
def remove_processes(
    kernel: Kernel, stream: CommandStream, arguments: list[str]
) -> None:
    kernel.remove_processes(arguments)


@command(
    "cancel processes",
    "NAME…",
    "End processes: scancel Slurm jobs, SIGTERM then SIGKILL local ones",
    """End processes and wait until they have ended (an extension: papa never
stops processes).  A Slurm job is cancelled with scancel; a local child gets
SIGTERM, then SIGKILL after 10 s.  The reply lists 'NAME exit_code=N'.
The entries stay, with their output, until removed or watched."""
    + PATTERN_HELP,
    position=110,
    extension=True,
)
async def cancel_processes(
    kernel: Kernel, stream: CommandStream, arguments: list[str]
) -> str:
    # A coroutine: the reply waits until every process has ended.
    return "\n".join(await kernel.cancel_processes(arguments))
