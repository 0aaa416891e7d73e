"""Command steps (ours): ``"command": [program, args...]`` with no queue of
its own, a program the command runner starts through papa."""

from __future__ import annotations

from dispatch.state.steps.registry import StepDefinition, StepKind

# Messages of steps that run a program wait here for the command runner.
COMMAND_QUEUE = "dispatch.commands"
COMMAND_RUNNER = "dispatch.runtime.commandrunner:CommandRunner"


class CommandStep(StepKind):
    """A program run through papa on this machine."""

    name = "command"
    service = COMMAND_RUNNER

    def recognises(self, step: StepDefinition) -> bool:
        return "command" in step and "slurm" not in step

    def problem(self, node: int, step: StepDefinition) -> str | None:
        if "command" not in step:
            return None
        command = step["command"]
        if (
            not isinstance(command, list)
            or not command
            or not all(isinstance(argument, str) for argument in command)
        ):
            return (
                f'Node "{node}" has an invalid "command" ({command!r}): '
                "it must be a non-empty list of strings (program and arguments)"
            )
        return None

    def destination_queue(self, step: StepDefinition) -> str | None:
        return COMMAND_QUEUE

    def label(self, step: StepDefinition) -> str | None:
        return " ".join(map(str, step.get("command") or [])) or None
