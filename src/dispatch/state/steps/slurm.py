"""Slurm steps (ours): a command step plus ``"slurm": {request keys}``, its
program submitted as a Slurm job by the same command runner."""

from __future__ import annotations

from dispatch.state.steps.command import CommandStep
from dispatch.state.steps.registry import StepDefinition


class SlurmStep(CommandStep):
    """A command step's program run as a Slurm job (``sbatch`` through papa)."""

    name = "slurm"

    def recognises(self, step: StepDefinition) -> bool:
        return "command" in step and "slurm" in step

    def problem(self, node: int, step: StepDefinition) -> str | None:
        # The command itself is the command kind's to check.
        if "slurm" not in step:
            return None
        request = step["slurm"]
        if not isinstance(request, dict) or not all(
            isinstance(key, str) for key in request
        ):
            return (
                f'Node "{node}" has an invalid "slurm" ({request!r}): '
                "it must be an object of Slurm request keys"
            )
        if "command" not in step:
            return f'Node "{node}" has "slurm" but no "command" to run as the job'
        return None
