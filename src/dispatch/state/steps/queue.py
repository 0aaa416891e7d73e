"""Service steps: the zocalo kind, a step with a ``queue`` (or ``topic``)
that a site's services consume."""

from __future__ import annotations

from dispatch.state.steps.registry import StepDefinition, StepKind


class QueueStep(StepKind):
    """A step whose messages wait on its ``queue`` and/or are copied to each
    subscriber of its ``topic`` (see :mod:`dispatch.state.topics`)."""

    name = "queue"

    def recognises(self, step: StepDefinition) -> bool:
        return self.label(step) is not None

    def destination_queue(self, step: StepDefinition) -> str | None:
        return str(step["queue"]) if step.get("queue") else None

    def label(self, step: StepDefinition) -> str | None:
        for key in ("queue", "topic"):
            if step.get(key):
                return str(step[key])
        return None
