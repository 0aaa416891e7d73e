"""The services of the dispatch crash soak (``dispatch_crash.py``), run by
``dispatch supervise`` as ``dispatch_soak_services:Count`` and
``dispatch_soak_services:Runner`` (``bench/soak`` is on their PYTHONPATH).

Each handler makes one countable side effect in zeo, in the transaction
that commits its message's transition: it adds one to the message's entry
in the tree ``root[EFFECTS]`` (message id -> count) and to the conflict-free
counter ``root[DONE]``.  Exactly-once handling means every entry is 1.
"""

import logging
from typing import Any

from dispatch.runtime.commandrunner import CommandRunner
from dispatch.runtime.service import Service

# What the runners do (programs started, adopted) goes to the soak's log.
logging.getLogger("dispatch.runtime").setLevel(logging.INFO)

EFFECTS = "dispatch-soak-effects"
DONE = "dispatch-soak-done"


def count_effect(service: Service, recipe_wrapper: Any) -> None:
    """The side effect, in the open transaction of *service*'s consumer."""
    assert service.consumer is not None
    root = service.consumer.connection.root()
    effects = root[EFFECTS]
    key = str(recipe_wrapper.message_id)
    effects[key] = effects.get(key, 0) + 1
    root[DONE].change(1)


class Count(Service):
    """Counts its message and sends the payload on."""

    queue = "soak.first"

    def handle(self, recipe_wrapper: Any, payload: Any) -> None:
        count_effect(self, recipe_wrapper)
        recipe_wrapper.send(payload)


class Runner(CommandRunner):
    """A CommandRunner that counts the message once its program succeeded
    (after the runner's own commits of the program record, so the effect is
    in the transaction of the transition)."""

    def handle(self, recipe_wrapper: Any, payload: Any) -> None:
        super().handle(recipe_wrapper, payload)
        count_effect(self, recipe_wrapper)
