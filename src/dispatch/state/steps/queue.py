"""Service steps: the zocalo kind, a step with a ``queue`` (or ``topic``)
that a site's service consumes."""

from __future__ import annotations

from dispatch.state.steps.registry import StepDefinition, StepKind


class QueueStep(StepKind):
    """A step whose messages wait on its ``queue``, else its ``topic`` (a
    topic is one more queue here: every step has one consumer group)."""

    name = "queue"

    def recognises(self, step: StepDefinition) -> bool:
        return self.destination_queue(step) is not None

    def destination_queue(self, step: StepDefinition) -> str | None:
        for key in ("queue", "topic"):
            if step.get(key):
                return str(step[key])
        return None

    def label(self, step: StepDefinition) -> str | None:
        return self.destination_queue(step)
