"""Step kinds, in one registry (see :mod:`dispatch.state.steps.registry`).

The built-in kinds, in order of precedence: service steps on a queue or
topic (zocalo's), Slurm steps (a command run as a Slurm job), command steps
(a program run through papa); a step none recognises is dropped silently,
as zocalo drops it.  A new kind is a module with a
:class:`~dispatch.state.steps.registry.StepKind` subclass that calls
:func:`register`.
"""

from dispatch.state.steps.command import COMMAND_QUEUE, CommandStep
from dispatch.state.steps.queue import QueueStep
from dispatch.state.steps.registry import (
    StepKind,
    describe,
    destination_queue,
    kind_of,
    kinds,
    label,
    problem,
    register,
    service_of,
    unregister,
)
from dispatch.state.steps.slurm import SlurmStep

__all__ = [
    "COMMAND_QUEUE",
    "StepKind",
    "describe",
    "destination_queue",
    "kind_of",
    "kinds",
    "label",
    "problem",
    "register",
    "service_of",
    "unregister",
]

# Validation order matters for the message of a step that is wrong twice:
# the command kind checks "command" before the Slurm kind checks "slurm".
register(QueueStep())
register(CommandStep())
register(SlurmStep())
