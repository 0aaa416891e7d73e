"""The Dispatcher: starts the recipes requested on ``processing_recipe``.

zocalo's Dispatcher service, as a dispatch service, so that a site needs no
zocalo to chain recipes: a step (or any program, ``zocalo.go`` included)
sends a request to queue ``processing_recipe``, in zocalo's format::

    {"recipes": ["name", ...], "custom_recipe": {...}, "parameters": {...}}

and the Dispatcher merges the named recipes (``NAME.json`` in
``$DISPATCH_RECIPES``, else storage ``zocalo.recipe_directory`` of a YAML
site configuration, as zocalo reads it) after the custom one, lets the
*filters* change the request first, and starts the run, whose id is
``parameters["guid"]`` (made if missing), in the commit that finishes the
request.

A filter is a function ``filter(message, parameters) -> (message,
parameters)``, as zocalo's ``zocalo.services.dispatcher.filters`` plugins
are; ``message["recipe"]`` is the :class:`~dispatch.state.recipe.Recipe`
built so far.  Filters are registered by name under the entry-point group
``dispatch.filters`` (run in name order) or named as ``module:function`` in
``$DISPATCH_FILTERS`` (comma-separated, run after them); then the custom
recipe and the named recipes are loaded.  A request that is malformed or
names a missing or invalid recipe is a dead letter at once, with the reason
(zocalo nacks it, to the same end after 5 deliveries); one whose filter
raises is delivered again after a back-off (the filter may depend on
something that comes back), unless the filter raises
:class:`~dispatch.state.broker.Reject`.
"""

from __future__ import annotations

import copy
import importlib
import logging
import os
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from dispatch.runtime.service import Service
from dispatch.state import broker, model
from dispatch.state.recipe import Recipe, RecipeError
from dispatch.state.wrapper import RecipeWrapper

logger = logging.getLogger(__name__)

QUEUE = "processing_recipe"
FILTER_GROUP = "dispatch.filters"
FILTERS_VARIABLE = "DISPATCH_FILTERS"
# Where named recipes are, as for ``dispatch go``.
RECIPES_VARIABLE = "DISPATCH_RECIPES"
# Where zocalo's Dispatcher finds them in its configuration's storage.
RECIPE_DIRECTORY_KEY = "zocalo.recipe_directory"

Filter = Callable[[dict[str, Any], dict[str, Any]], tuple[dict[str, Any], Any]]


def load_filters(names: str | None = None) -> list[tuple[str, Filter]]:
    """``[(name, function)]``: the ``dispatch.filters`` entry points by
    name, then the ``module:function`` names in *names* (comma-separated;
    default ``$DISPATCH_FILTERS``).  A name that does not load raises
    :class:`ValueError` saying which."""
    found = [
        (point.name, point.load())
        for point in sorted(entry_points(group=FILTER_GROUP), key=lambda p: p.name)
    ]
    listed = os.environ.get(FILTERS_VARIABLE, "") if names is None else names
    for name in filter(None, (part.strip() for part in listed.split(","))):
        module_name, _, function_name = name.partition(":")
        try:
            found.append(
                (name, getattr(importlib.import_module(module_name), function_name))
            )
        except (ImportError, AttributeError, ValueError) as error:
            raise ValueError(
                f"${FILTERS_VARIABLE}: cannot load filter {name!r} "
                f"(give module:function): {error}"
            ) from None
    return found


class FilterFailed(Exception):
    """A filter raised: the request is delivered again after a back-off
    (a dead letter after 5 deliveries), as zocalo nacks it."""


class Dispatcher(Service):
    """Starts the runs requested on ``processing_recipe`` (see the module)."""

    queue = QUEUE
    service_name = "Dispatcher"

    def initializing(self) -> None:
        # As zocalo's Dispatcher, also from the site configuration's storage.
        self.recipe_directory = os.environ.get(
            RECIPES_VARIABLE
        ) or self.config.storage.get(RECIPE_DIRECTORY_KEY)
        self.filters = load_filters()
        logger.info(
            "Dispatcher: recipes in %s; filters %s",
            self.recipe_directory or "(none: $%s unset)" % RECIPES_VARIABLE,
            ", ".join(name for name, _f in self.filters) or "none",
        )

    def handle(self, recipe_wrapper: RecipeWrapper, payload: Any) -> None:
        if not isinstance(payload, dict):
            raise broker.Reject(f"a request is an object, not {payload!r}")
        message = copy.deepcopy(payload)
        parameters = message.get("parameters", {})
        if not isinstance(parameters, dict):
            raise broker.Reject("parameters not given as a dictionary")
        parameters["guid"] = str(parameters.get("guid") or model.new_id())
        message["recipe"] = Recipe()
        for name, function in self.filters:
            try:
                message, parameters = function(message, parameters)
            except broker.Reject:
                raise
            except Exception as error:  # delivered again, as zocalo's nack
                raise FilterFailed(f"filter {name} failed: {error!r}") from error
        message["recipe"] = self._with_recipes(message)
        recipe = message["recipe"]
        if not recipe:
            raise broker.Reject("no recipe: give recipes or custom_recipe")
        name = "+".join(map(str, message.get("recipes") or [])) or "custom"
        try:  # everything start_run would refuse, on scratch state
            broker.start_run(model.Dispatch(), recipe, parameters, name=name)
        except (RecipeError, ValueError) as error:
            raise broker.Reject(str(error)) from None
        state = (
            self.consumer.connection.root().get(model.ROOT_KEY)
            if self.consumer
            else None
        )
        if state is not None and parameters["guid"] in state.runs:
            raise broker.Reject(f"run {parameters['guid']} exists already")
        recipe_wrapper.start_run(Recipe(recipe).to_dict(), parameters, name)
        logger.info("run %s of %s requested", parameters["guid"], name)

    def _with_recipes(self, message: dict[str, Any]) -> Recipe:
        """``message["recipe"]`` merged with its custom recipe, then with
        each named recipe (zocalo's order)."""
        recipe = Recipe(message["recipe"])
        custom = message.get("custom_recipe")
        if custom:
            try:
                loaded = Recipe(custom)
                loaded.validate()
            except (RecipeError, TypeError, ValueError) as error:
                raise broker.Reject(f"custom recipe: {error}") from None
            recipe = recipe.merge(loaded)
        names = message.get("recipes") or []
        if not isinstance(names, list):
            raise broker.Reject(f"recipes is a list of names, not {names!r}")
        for name in names:
            recipe = recipe.merge(self._named(str(name)))
        return recipe

    def _named(self, name: str) -> Recipe:
        if not self.recipe_directory:
            raise broker.Reject(f"recipe {name!r}: ${RECIPES_VARIABLE} is not set")
        path = Path(self.recipe_directory) / f"{name}.json"
        if "/" in name or not path.is_file():
            raise broker.Reject(f"no recipe {name!r} in {self.recipe_directory}")
        try:
            recipe = Recipe.from_file(path)
            recipe.validate()
        except (RecipeError, OSError, UnicodeDecodeError) as error:
            raise broker.Reject(f"recipe {name!r} ({path}): {error}") from None
        return recipe
