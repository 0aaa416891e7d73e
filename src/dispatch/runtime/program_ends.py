"""How a command step's program ended, in the runner's terms: the exceptions
:class:`~dispatch.runtime.commandrunner.CommandRunner` raises to fail or
give back a delivery, the words for an exit status, and leaving a papa
watch without acknowledging what it last gave.
"""

from __future__ import annotations

import logging
import signal
from typing import Any

from dispatch.state import broker

logger = logging.getLogger(__name__)

# papa.process.UNKNOWN_EXIT_CODE: the end of a program papa adopted after a
# restart (no longer its child), or of a job Slurm kept no code for.
UNKNOWN_EXIT_CODE = -255


class CommandFailed(Exception):
    """A command step's program ended with a non-zero status (or, for a
    Slurm job, in a state other than COMPLETED or FAILED)."""

    def __init__(
        self, exit_code: int, output_tail: str, slurm_state: str | None = None
    ) -> None:
        super().__init__(describe_end(exit_code, slurm_state))
        self.exit_code = exit_code
        self.output_tail = output_tail
        self.slurm_state = slurm_state


class ProgramLeftRunning(broker.GiveBack):
    """The runner stopped following a program that goes on running, or whose
    exit code papa keeps (the runner is stopping, or the message went to
    another runner)."""


class ProgramCancelled(Exception):
    """The program was stopped because its message no longer needs it."""


class KernelLost(Exception):
    """The papa kernel could not be reached, or went away mid-command."""


class ProgramVanished(Exception):
    """papa forgot the program before its end was seen (removed by hand?)."""


def describe_end(exit_code: Any, slurm_state: str | None = None) -> str:
    """Why a program failed, in words: its status, the signal that killed it
    (a negative code), or the Slurm state that ended its job (TIMEOUT,
    OUT_OF_MEMORY, NODE_FAIL, CANCELLED, PREEMPTED ...)."""
    if slurm_state and slurm_state not in ("COMPLETED", "FAILED"):
        return f"Slurm job ended {slurm_state} (status {exit_code})"
    if exit_code == UNKNOWN_EXIT_CODE:
        return "program ended; its exit code is unknown (see papa's log)"
    if isinstance(exit_code, int) and exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = "unknown signal"
        return f"command killed by signal {-exit_code} ({name})"
    return f"command exited with status {exit_code}"


def drop_watch(watcher: Any) -> None:
    """End a papa watch without acknowledging what it last gave: papa keeps
    that batch (an exit code above all) for the next watcher, where
    ``Watcher.close()`` would acknowledge it with ``q``."""
    connection, watcher.connection = watcher.connection, None
    if connection is not None:
        connection.close()
