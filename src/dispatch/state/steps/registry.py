"""The registry of step kinds: what each kind of recipe step is.

A recipe step is a dict; what it means depends on its keys.  Each kind says,
in its own module, how it is recognised, what is wrong with a step of it
(``Invalid recipe: ...``), which queue its messages wait on, how it is named
in ``dispatch show`` and ``dispatch go --wait``, and which service handles
its messages.  The recipe, the broker and the displays ask this registry,
so that a new kind is one module that calls :func:`register`.

Services are named by dotted path (``module:Class``), never imported here:
the state layer does not depend on the runtime that consumes it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

StepDefinition = Mapping[str, Any]


class StepKind:
    """One kind of recipe step.  Subclass it, override what differs, and
    :func:`register` an instance."""

    # A short word for the kind (logs, errors, documentation).
    name = "step"
    # The service that handles the kind's messages, as ``module:Class``, or
    # None when each step names its own (a site's services on their queues).
    service: str | None = None

    def recognises(self, step: StepDefinition) -> bool:
        """True when *step* is of this kind (the first registered kind that
        recognises a step decides its queue, names and service)."""
        raise NotImplementedError

    def problem(self, node: int, step: StepDefinition) -> str | None:
        """What is wrong with the keys this kind owns in *step* (node id
        *node*), or None.  Asked of every kind for every step, so a key is
        checked wherever it appears."""
        return None

    def destination_queue(self, step: StepDefinition) -> str | None:
        """The queue messages for *step* wait on; None drops them silently,
        as zocalo does for a step without a queue."""
        return None

    def label(self, step: StepDefinition) -> str | None:
        """The step's name in the progress table when it names no service."""
        return None

    def describe(self, step: StepDefinition) -> str | None:
        """What ``dispatch show`` prints in parentheses after the step."""
        service = step.get("service")
        return str(service) if service else None

    def __repr__(self) -> str:
        return f"<step kind {self.name}>"


class UnroutedStep(StepKind):
    """A step no other kind recognises: its messages are dropped silently
    (zocalo's behaviour for a step that names no queue)."""

    name = "unrouted"

    def recognises(self, step: StepDefinition) -> bool:
        return True


UNROUTED = UnroutedStep()
_kinds: list[StepKind] = []


def register(kind: StepKind) -> StepKind:
    """Add *kind* after those registered before (they keep their
    precedence); returns it, so that a module may keep it."""
    if kind not in _kinds:
        _kinds.append(kind)
        logger.debug("step kind %s registered", kind.name)
    return kind


def unregister(kind: StepKind) -> None:
    """Forget *kind* (a test's or a plug-in's that is unloaded)."""
    if kind in _kinds:
        _kinds.remove(kind)


def kinds() -> list[StepKind]:
    """The registered kinds, in order of precedence."""
    return list(_kinds)


def kind_of(step: StepDefinition) -> StepKind:
    """The kind of *step*: the first registered that recognises it."""
    for kind in _kinds:
        if kind.recognises(step):
            return kind
    return UNROUTED


def problem(node: int, step: StepDefinition) -> str | None:
    """The first thing any kind finds wrong with *step*, or None."""
    for kind in _kinds:
        found = kind.problem(node, step)
        if found is not None:
            return found
    return None


def destination_queue(step: StepDefinition) -> str | None:
    """Where messages for *step* wait (None: dropped silently)."""
    return kind_of(step).destination_queue(step)


def label(step: StepDefinition) -> str:
    """The step's name in the progress table: its service, else what its
    kind calls it, else ``-``."""
    service = step.get("service")
    if service:
        return str(service)
    return kind_of(step).label(step) or "-"


def describe(step: StepDefinition) -> str | None:
    """What ``dispatch show`` prints in parentheses after the step, or None."""
    return kind_of(step).describe(step)


def service_of(step: StepDefinition) -> str | None:
    """The ``module:Class`` of the service that handles *step*'s messages,
    or None when the step's own queue names whose they are."""
    return kind_of(step).service
