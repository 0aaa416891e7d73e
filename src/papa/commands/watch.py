"""``watch processes``, ``peek``, and the pure steps of the streaming the session runs.

The handler only names the processes to watch; the session's loop
(:meth:`papa.session.Session.watch`) waits for output and acknowledgements
and, between those waits, calls :func:`collect_batch` for the next batch and
:func:`drop_vanished` to forget removed processes: no I/O in either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ..errors import Error
from ..patterns import match
from ..protocol import closed_record, escape, output_record_parts
from .table import PATTERN_HELP, Watch, command

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..process import ManagedProcess
    from ..protocol import CommandStream


@command(
    "watch processes",
    "NAME…",
    "Receive the output and exit codes of processes",
    """Receive the output and exit codes of processes.

The reply is 'Watching N', then batches of records ending in '] ':
    out:NAME:TIMESTAMP:LENGTH  followed by LENGTH bytes of stdout
    err:NAME:TIMESTAMP:LENGTH  followed by LENGTH bytes of stderr
    closed:NAME:TIMESTAMP:EXITCODE
After each batch send one line to acknowledge it ('-' will do), or 'q' to
acknowledge and stop watching.  Unacknowledged output is sent again to the
next watcher."""
    + PATTERN_HELP,
    position=90,
)
def watch_processes(
    kernel: Kernel, stream: CommandStream, arguments: list[str]
) -> Watch:
    processes = kernel.processes
    names = match(processes, arguments, required=True)
    if not names:
        raise Error("Nothing to watch")
    return Watch(f"Watching {len(names)}", {name: processes[name] for name in names})


# Lines ``peek`` sends without a count, and at most.
PEEK_LINES = 20
PEEK_MAX_LINES = 1000


@command(
    "peek",
    "NAME [LINES]",
    "Show the last lines of a process's output, consuming nothing",
    f"""Show the last LINES lines (default {PEEK_LINES}, at most {PEEK_MAX_LINES}) of a
process's output, stdout and stderr as they came, one line each, escaped as
with 'protocol escapes' (so no line can look like the prompt or an error).
Nothing is consumed: watchers still get all of it, and output they have
acknowledged is shown too (the last 16k of it are kept for peek).""",
    position=95,
    extension=True,
)
def peek(kernel: Kernel, stream: CommandStream, arguments: list[str]) -> str:
    if not 1 <= len(arguments) <= 2:
        raise Error("peek needs a process name and, optionally, a number of lines")
    name = arguments[0]
    count = PEEK_LINES
    if len(arguments) == 2:
        if not arguments[1].isdigit() or int(arguments[1]) > PEEK_MAX_LINES:
            raise Error(
                f"peek: LINES must be a number from 0 to {PEEK_MAX_LINES}, "
                f"not {arguments[1]!r}"
            )
        count = int(arguments[1])
    process = kernel.processes.get(name)
    if process is None:
        raise Error(f"peek: no process named {name!r}")
    if process.output is None:
        return ""
    return "\n".join(escape(line) for line in process.output.recent_lines(count))


def collect_batch(
    targets: Mapping[str, ManagedProcess],
) -> tuple[list[bytes | list[bytes]], dict[str, int], list[str]]:
    """The records of the next batch, the sequence to acknowledge per
    process once the client has it, and the processes whose end it holds."""
    records: list[bytes | list[bytes]] = []
    marks: dict[str, int] = {}
    closed: list[str] = []
    for name, process in targets.items():
        if process.output is None:
            continue
        chunks = process.output.pending()
        for chunk in chunks:
            data = chunk.data
            if isinstance(data, int):  # only the closed record holds a number
                records.append(closed_record(name, chunk.timestamp, data))
                closed.append(name)
            else:
                records.append(
                    output_record_parts(chunk.kind, name, chunk.timestamp, data)
                )
        if chunks:
            marks[name] = chunks[-1].sequence
    return records, marks, closed


def drop_vanished(
    targets: dict[str, ManagedProcess],
    processes: Mapping[str, ManagedProcess],
    listener: Callable[[], None],
) -> None:
    """Forget watched processes that were removed and have nothing left to
    deliver; ``listener`` (the watcher's wake-up) is unsubscribed from them."""
    for name, process in list(targets.items()):
        if processes.get(name) is not process and not (
            process.output and len(process.output)
        ):
            if process.output is not None:
                process.output.unsubscribe(listener)
            del targets[name]
