"""RecipeWrapper: what a service gets with each message, as in workflows.

It knows the run's recipe, the step the message is for (``recipe_step``),
the run-wide ``environment`` and the ``payload``, and turns "send this on"
into messages for the downstream steps with zocalo's routing rules:

=====================  ======================  ===========================
current step has       ``send(payload)``       ``send_to(name, payload)``
=====================  ======================  ===========================
no ``output``          dropped                 dropped
a list (unnamed)       to every listed step    dropped, unless *name* is
                                               the default channel
a dict (named)         dropped, unless a       to ``output[name]`` if
                       default channel is set  present, else dropped
=====================  ======================  ===========================

Dropping is silent on purpose: a service may emit on channels a recipe does
not wire up.  The wrapper itself stores nothing; *send_to_node* (given by
:mod:`dispatch.state.broker`) creates the message in the consumer's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

logger = logging.getLogger(__name__)


# Creates the message for (node, payload, path, delay); returns it, or None
# when the node has no destination.
SendToNode = Callable[[int, Any, list[int], float], Any]


def _as_list(links: Any) -> list[int]:
    """Node ids of one output value (an int or a list of ints)."""
    if links is None:
        return []
    if isinstance(links, int):
        return [links]
    return list(links)


class RecipeWrapper:
    """One message's view of its recipe, with zocalo's sending methods."""

    def __init__(
        self,
        recipe: Mapping[str, Any],
        pointer: int,
        path: list[int],
        environment: dict[str, Any],
        payload: Any,
        send_to_node: SendToNode,
        message_id: str | None = None,
    ) -> None:
        self.recipe = recipe
        self.message_id = message_id
        # What the handler reports about its work (exit code, output tail);
        # kept in the message's attempt.
        self.outcome: dict[str, Any] = {}
        self.recipe_pointer = pointer
        self.recipe_step = recipe[str(pointer)]
        self.recipe_path = list(path)
        self.environment = environment
        self.payload = payload
        self.default_channel: str | None = None
        self._send_to_node = send_to_node

    def __repr__(self) -> str:
        return (
            f"<RecipeWrapper run {self.environment.get('ID')} "
            f"step {self.recipe_pointer}>"
        )

    def record(self, **outcome: Any) -> None:
        """Note ``exit_code``, ``output_tail`` or ``slurm_job`` of the work
        for the attempt record (whether the delivery succeeds or fails)."""
        self.outcome.update(outcome)

    def start_run(
        self, recipe: Mapping[str, Any], parameters: Mapping[str, Any], name: str
    ) -> None:
        """Start a run of *recipe* with *parameters* (listed as *name*) in
        the commit that finishes this message, as zocalo's Dispatcher
        acks its request and starts the recipe in one transaction."""
        self.outcome.setdefault("start_runs", []).append(
            (dict(recipe), dict(parameters), name)
        )

    def set_default_channel(self, channel: str) -> None:
        """Make named output *channel* what :meth:`send` uses, and let
        ``send_to(channel)`` reach an unnamed output."""
        self.default_channel = channel

    def send(self, payload: Any, delay: float | None = None) -> list[Any]:
        """Send *payload* on the unnamed output (or the default channel);
        returns the messages created."""
        output = self.recipe_step.get("output")
        if isinstance(output, dict):
            if self.default_channel is None:
                logger.debug("%r: send() on named outputs dropped", self)
                return []
            return self.send_to(self.default_channel, payload, delay)
        return self._send_to_nodes(_as_list(output), payload, delay)

    def send_to(
        self, channel: str, payload: Any, delay: float | None = None
    ) -> list[Any]:
        """Send *payload* on named output *channel*; returns the messages."""
        output = self.recipe_step.get("output")
        if isinstance(output, dict):
            nodes = _as_list(output.get(channel))
        elif output is not None and channel == self.default_channel:
            nodes = _as_list(output)
        else:
            nodes = []
        if not nodes:
            logger.debug("%r: nothing wired to channel %r; dropped", self, channel)
        return self._send_to_nodes(nodes, payload, delay)

    def checkpoint(self, payload: Any, delay: float | None = 0) -> list[Any]:
        """Send *payload* to this same step again, after *delay* seconds
        (the recipe path is unchanged; the step's transport-delay is not
        used), e.g. to poll for something without holding a consumer."""
        message = self._send_to_node(
            self.recipe_pointer, payload, self.recipe_path, delay or 0
        )
        return [message] if message is not None else []

    def _send_to_nodes(
        self, nodes: list[int], payload: Any, delay: float | None
    ) -> list[Any]:
        path = self.recipe_path + [self.recipe_pointer]
        messages = []
        for node in nodes:
            step_delay = delay
            if step_delay is None:
                step_delay = self.recipe[str(node)].get("transport-delay", 0)
            message = self._send_to_node(node, payload, path, step_delay)
            if message is not None:
                messages.append(message)
        return messages
