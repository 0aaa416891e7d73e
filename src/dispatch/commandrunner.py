"""The service that runs ``command`` steps through papa.

A recipe step with ``"command": [program, args...]`` and no queue of its
own waits on ``dispatch.commands``; ``dispatch service CommandRunner`` (or
``dispatch.commandrunner:CommandRunner``) takes each such message, has the
papa kernel start the program (as a Slurm job when the step has
``"slurm": {...}``), follows its output to the end and records the exit code,
the child's pid and the last lines of output in the attempt.

Exit status 0 sends ``{"exit_code", "output_tail"}`` on the step's unnamed
output and on its ``success`` channel.  Any other status fails the delivery
(so it is retried with back-off, and dead-lettered after five), keeping the
exit code and output tail in the attempt for ``dispatch show``.

The kernel is ``$DISPATCH_PAPA`` (a TCP port on 127.0.0.1 or a Unix socket
path), default papa's own default (127.0.0.1:20202, started if absent).
"""

import logging
import os
import shutil

from dispatch import broker
from dispatch.service import Service

logger = logging.getLogger(__name__)

PAPA_VARIABLE = "DISPATCH_PAPA"
# Lines of output kept in the attempt: enough for a traceback's end.
OUTPUT_TAIL_LINES = 20
OUTPUT_TAIL_BYTES = 4096


class CommandFailed(Exception):
    """A command step's program ended with a non-zero status."""

    def __init__(self, exit_code, output_tail):
        super().__init__(f"command exited with status {exit_code}")
        self.exit_code = exit_code
        self.output_tail = output_tail


def output_tail(data):
    """The last lines of *data* (bytes) as text."""
    text = data[-OUTPUT_TAIL_BYTES:].decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-OUTPUT_TAIL_LINES:])


def papa_address():
    """``$DISPATCH_PAPA`` as papa's ``Papa()`` wants it, or None."""
    value = os.environ.get(PAPA_VARIABLE)
    if not value:
        return None
    return int(value) if value.isdigit() else value


class CommandRunner(Service):
    """Runs each ``command`` step's program through the papa kernel."""

    queue = broker.COMMAND_QUEUE

    def handle(self, recipe_wrapper, payload):
        import papa

        step = recipe_wrapper.recipe_step
        argv = [str(arg) for arg in step["command"]]
        executable = shutil.which(argv[0]) or argv[0]
        run_id = recipe_wrapper.environment.get("ID", "run")
        name = f"dispatch.{run_id}.{recipe_wrapper.recipe_pointer}"
        name += f".{recipe_wrapper.message_id}"
        options = {}
        if "slurm" in step:
            options["slurm"] = step["slurm"]
        output = bytearray()
        exit_code = None
        with papa.Papa(papa_address()) as kernel:
            try:
                watcher = kernel.make_process(
                    name,
                    executable,
                    args=argv[1:],
                    stdout=papa.PIPE,
                    stderr=papa.STDOUT,
                    watch_immediately=True,
                    **options,
                )
                with watcher:
                    while watcher:
                        out, _err, closed = watcher.read()
                        for record in out:
                            output.extend(record.data)
                        for record in closed:
                            exit_code = record.data
            finally:
                try:
                    kernel.remove_processes(name)
                except papa.Error:
                    pass  # already gone once watched to the end
        tail = output_tail(bytes(output))
        recipe_wrapper.record(exit_code=exit_code, output_tail=tail)
        if exit_code != 0:
            raise CommandFailed(exit_code, tail)
        result = {"exit_code": exit_code, "output_tail": tail}
        recipe_wrapper.send(result)
        recipe_wrapper.send_to("success", result)
