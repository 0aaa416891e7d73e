"""Two small services for the demo recipe and for trying things out.

``Greeter`` (queue ``greet``) adds the step's ``name`` parameter to the
greeting and sends it on channel ``greeted``; ``Counter`` (queue ``count``)
counts up to the step's ``limit`` parameter with checkpoints, then sends
on.  Registered as entry points ``Greeter`` and ``Counter`` of the group
``dispatch.services``.
"""

from __future__ import annotations

import logging
from typing import Any

from dispatch.runtime.service import Service
from dispatch.state.wrapper import RecipeWrapper

logger = logging.getLogger(__name__)


class Greeter(Service):
    """Greets the ``name`` parameter and sends the greeting on."""

    queue = "greet"

    def handle(self, recipe_wrapper: RecipeWrapper, payload: Any) -> None:
        name = recipe_wrapper.recipe_step.get("parameters", {}).get("name", "world")
        greeting = f"{(payload or {}).get('greeting', 'hello')} {name}"
        logger.info("run %s: %s", recipe_wrapper.environment.get("ID"), greeting)
        recipe_wrapper.send_to("greeted", {"greeting": greeting})


class Counter(Service):
    """Counts to ``limit`` one checkpoint at a time (zocalo's way for a step
    to come back to itself), then sends the count on."""

    queue = "count"

    def handle(self, recipe_wrapper: RecipeWrapper, payload: Any) -> None:
        limit = int(recipe_wrapper.recipe_step.get("parameters", {}).get("limit") or 3)
        count = int((payload or {}).get("count", 0)) + 1
        if count < limit:
            recipe_wrapper.checkpoint({**(payload or {}), "count": count})
        else:
            recipe_wrapper.send({"count": count})
