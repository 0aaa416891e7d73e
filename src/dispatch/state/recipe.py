"""Recipes: the zocalo/python-workflows JSON format, accepted verbatim.

A recipe is a small directed acyclic graph of numbered steps::

    {"description": "optional text",
     "1": {"service": "A", "queue": "a", "parameters": {"x": "{x}"}, "output": 2},
     "2": {"queue": "b", "command": ["echo", "{x}"]},
     "start": [[1, {}]],
     "error": [2]}

It is validated with workflows' six rules and the same messages (``Invalid
recipe: ...``); parameters are substituted once
(:mod:`dispatch.state.parameters`);
two recipes merge into a new one without touching either.  Where workflows
misbehaves (see the QUIRKs in ZOCALO.md) we differ on purpose: merge is pure,
a scalar ``"error"`` is accepted, and a bad placeholder names its step.

Two step keys are ours: ``"command": [argv...]`` (a program run through papa)
and ``"slurm": {...}`` (the same program as a Slurm job, with these request
keys).  Zocalo recipes never contain them, so they stay valid here.  What
each kind of step may contain is checked by its kind
(:mod:`dispatch.state.steps`).
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from dispatch.state import steps as step_kinds
from dispatch.state.parameters import SubstitutionError, substitute

logger = logging.getLogger(__name__)

# Top-level keys that are not steps.  "description"/"comment" replace the
# duplicate-key comment idiom of DLS recipes with something JSON keeps.
SPECIAL_KEYS = ("start", "error", "description", "comment")
LINK_KEYS = ("output", "error")


class RecipeError(ValueError):
    """An invalid recipe; the message starts with ``Invalid recipe:``."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"Invalid recipe: {reason}")
        self.reason = reason


def _pairs_keeping_last(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """JSON object hook: the last of duplicate keys wins, as in ``json``,
    but the dropped value is logged, since DLS recipes use a duplicate first
    key as a comment (``"1": ["Recipe for..."], "1": {...}``)."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            dropped = result[key]
            if isinstance(dropped, str) or (
                isinstance(dropped, list) and all(isinstance(x, str) for x in dropped)
            ):
                logger.warning(
                    "recipe key %r appears twice; the first value %r is taken as a "
                    'comment and dropped (use a "description" key instead)',
                    key,
                    dropped,
                )
            else:
                logger.warning(
                    "recipe key %r appears twice; the first value %r is dropped",
                    key,
                    dropped,
                )
        result[key] = value
    return result


def parse_json(text: str | bytes) -> dict[str, Any]:
    """A dict from recipe JSON text, tolerating duplicate-key comments."""
    try:
        data = json.loads(text, object_pairs_hook=_pairs_keeping_last)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        # bytes that are not UTF-8/16/32 fail before the JSON parser starts.
        raise RecipeError(f"not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"a recipe is a JSON object, not {type(data).__name__}")
    return data


def _sanitise(data: Mapping[Any, Any]) -> dict[Any, Any]:
    """Workflows' load-time normalisation, on a deep copy of *data*.

    Numeric-string keys become int node ids (ids start at 1: ``"0"`` stays a
    string and fails validation), a scalar ``output`` becomes a list,
    ``start`` entries become tuples and a scalar ``error`` a list.
    """
    result: dict[Any, Any] = {}
    for key, value in copy.deepcopy(data).items():
        # isdigit() alone admits "¹", which int() refuses (found by fuzzing).
        if isinstance(key, str) and key.isascii() and key.isdigit() and int(key) > 0:
            key = int(key)
        if isinstance(key, int) and isinstance(value, dict):
            output = value.get("output")
            if isinstance(output, int) and not isinstance(output, bool):
                value["output"] = [output]
        result[key] = value
    start = result.get("start")
    if isinstance(start, list):
        result["start"] = [
            tuple(entry) if isinstance(entry, list) else entry for entry in start
        ]
    error = result.get("error")
    if error is not None and not isinstance(error, (list, tuple)):
        result["error"] = [error]
    return result


def _flatten_links(links: Any) -> list[int]:
    """Node ids of an ``output``/``error`` value: int, list of ints, or a
    dict whose values are those."""
    if links is None:
        return []
    if isinstance(links, int) and not isinstance(links, bool):
        return [links]
    if isinstance(links, (list, tuple)):
        if all(isinstance(x, int) and not isinstance(x, bool) for x in links):
            return list(links)
    elif isinstance(links, dict):
        flat: list[int] = []
        for value in links.values():
            flat.extend(_flatten_links(value))
        return flat
    raise RecipeError(f"Invalid link in recipe ({links})")


class Recipe:
    """A recipe: ``steps`` by int id plus ``start``, ``error``, ``description``.

    Build one from JSON text, a ``"1"``-keyed dict or another Recipe.  The
    object is treated as immutable: :meth:`apply_parameters` and
    :meth:`merge` return new recipes.
    """

    # int node ids -> step dicts, plus "start", "error", "description".
    data: dict[Any, Any]

    def __init__(self, source: Recipe | str | bytes | Mapping | None = None) -> None:
        data: Mapping[Any, Any]
        if source is None:
            data = {}
        elif isinstance(source, Recipe):
            data = source.data
        elif isinstance(source, (str, bytes)):
            data = parse_json(source)
        elif isinstance(source, dict):
            data = source
        else:
            raise RecipeError(
                f"a recipe is JSON text or a dict, not {type(source).__name__}"
            )
        self.data = _sanitise(data)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Recipe:
        """Read and sanitise (not validate) the recipe in file *path*."""
        with open(path, encoding="utf-8") as stream:
            return cls(stream.read())

    # -- reading -----------------------------------------------------------

    def __getitem__(self, key: int | str) -> Any:
        return self.data[key]

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (str, bytes, dict)):
            other = Recipe(other)
        if not isinstance(other, Recipe):
            return NotImplemented
        return self.data == other.data

    def __repr__(self) -> str:
        return f"Recipe({self.to_json()})"

    def __bool__(self) -> bool:
        return bool(self.data)

    @property
    def steps(self) -> dict[int, Any]:
        """``{node id: step dict}`` for the numbered steps."""
        return {k: v for k, v in self.data.items() if isinstance(k, int)}

    @property
    def start(self) -> list[tuple[int, Any]]:
        """The ``(node id, payload)`` pairs sent when a run starts."""
        return list(self.data.get("start", []))

    @property
    def error(self) -> list[int]:
        """The recipe-wide error node ids."""
        return list(self.data.get("error", []))

    @property
    def description(self) -> str | None:
        """The ``description`` (or ``comment``) text, or None."""
        return self.data.get("description", self.data.get("comment"))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready deep copy (string node ids, ``start`` as lists)."""
        result = {}
        for key, value in self.data.items():
            if key == "start" and isinstance(value, list):
                value = [list(e) if isinstance(e, tuple) else e for e in value]
            result[str(key) if isinstance(key, int) else key] = copy.deepcopy(value)
        return result

    def to_json(self, **options: Any) -> str:
        """The recipe as JSON text (``json.dumps`` *options* allowed)."""
        return json.dumps(self.to_dict(), **options)

    # -- validation --------------------------------------------------------

    def validate(self) -> None:
        """Raise :class:`RecipeError` unless this is a valid recipe.

        The checks and their messages are those of workflows'
        ``Recipe.validate``, in the same order, then those of the step
        kinds (:mod:`dispatch.state.steps`) for their own keys.
        """
        data = self.data
        if not data:
            raise RecipeError("No recipe defined")
        if "start" not in data:
            raise RecipeError('"start" node missing')
        if not data["start"]:
            raise RecipeError('"start" node empty')
        if not isinstance(data["start"], list) or not all(
            isinstance(entry, tuple) and len(entry) == 2 for entry in data["start"]
        ):
            raise RecipeError('"start" node invalid')
        if any(entry[0] == "start" for entry in data["start"]):
            raise RecipeError('"start" node points to itself')
        error = data.get("error", [])
        if "start" in error:
            raise RecipeError('"error" node points to "start"')
        if "error" in error:
            raise RecipeError('"error" node points to itself')
        for key in data:
            if key not in SPECIAL_KEYS and not isinstance(key, int):
                raise RecipeError(
                    f'Node "{key}" is not numeric (step ids are integers from 1)'
                )
        for key in ("description", "comment"):
            if key in data and not isinstance(data[key], str):
                raise RecipeError(f'"{key}" must be a string')
        for node, step in self.steps.items():
            if not isinstance(step, dict):
                raise RecipeError(f'Node "{node}" is not an object')
        touched: set[int | str] = {"start", "error", "description", "comment"}
        self._find_cycles_from_roots(touched)
        for node in data:
            if node not in touched:
                raise RecipeError(f'Recipe contains unreferenced node "{node}"')
        for node, step in self.steps.items():
            found = step_kinds.problem(node, step)
            if found is not None:
                raise RecipeError(found)

    def _find_cycles_from_roots(self, touched: set[int | str]) -> None:
        """Depth-first from every start and error target; marks *touched*."""

        def visit(path: list) -> None:
            node = path[-1]
            if (
                not isinstance(node, int)
                or isinstance(node, bool)
                or node not in self.data
            ):
                raise RecipeError(
                    f'Node "{node}" is referenced via "{path[:-1]}" but missing'
                )
            touched.add(node)
            step = self.data[node]
            for link_key in LINK_KEYS:
                if link_key in step:
                    for target in _flatten_links(step[link_key]):
                        if target in path:
                            raise RecipeError(
                                f"Recipe contains cycle ({path} -> {target})"
                            )
                        visit(path + [target])

        for target, _payload in self.data["start"]:
            visit(["start", target])
        for target in self.data.get("error", []):
            visit(["error", target])

    def is_valid(self) -> bool:
        """True when :meth:`validate` passes."""
        try:
            self.validate()
        except RecipeError:
            return False
        return True

    # -- transformations ---------------------------------------------------

    def apply_parameters(self, parameters: Mapping[str, Any]) -> Recipe:
        """A new recipe with every string substituted from *parameters*.

        A template that cannot be filled raises :class:`RecipeError`
        naming the step (or ``start``/``error``) it is in.
        """
        result: dict[Any, Any] = {}
        for key, value in self.data.items():
            where = f'node "{key}"' if isinstance(key, int) else f'"{key}"'
            try:
                result[key] = substitute(value, parameters)
            except SubstitutionError as error:
                raise RecipeError(
                    f"cannot substitute parameters in {where}: {error}"
                ) from None
        recipe = Recipe()
        recipe.data = result
        return recipe

    def merge(self, other: Recipe | str | bytes | Mapping | None) -> Recipe:
        """A new recipe: this one plus *other*'s steps, renumbered after ours.

        Neither operand changes.  Both must be valid; *other*'s steps get
        ids ``max(ours) + 1, + 2, ...`` in its key order, its links are
        translated, its ``start`` entries appended to ours and its ``error``
        ids to ours.  Nothing is de-duplicated, as in workflows.
        """
        if other is None:
            return Recipe(self)
        if not isinstance(other, Recipe):
            other = Recipe(other)
        if not other:
            return Recipe(self)
        if not self:
            return Recipe(other)
        self.validate()
        other.validate()
        offset = max(self.steps)
        mapping = {node: offset + index for index, node in enumerate(other.steps, 1)}
        result = copy.deepcopy(self.data)
        for node, step in other.steps.items():
            step = copy.deepcopy(step)
            for link_key in LINK_KEYS:
                if link_key in step:
                    step[link_key] = _translate_links(step[link_key], mapping)
            result[mapping[node]] = step
        result["start"] = list(result["start"]) + [
            (mapping[target], copy.deepcopy(payload)) for target, payload in other.start
        ]
        if other.error or self.error:
            result["error"] = self.error + [mapping[n] for n in other.error]
        if "description" not in result and other.description is not None:
            result["description"] = other.description
        recipe = Recipe()
        recipe.data = result
        return recipe


def _translate_links(links: Any, mapping: Mapping[int, int]) -> Any:
    """*links* (int, list or dict of those) with node ids renumbered."""
    if isinstance(links, int):
        return mapping[links]
    if isinstance(links, (list, tuple)):
        return [mapping[n] for n in links]
    return {name: _translate_links(value, mapping) for name, value in links.items()}


def validate_file(path: str | os.PathLike[str]) -> Recipe:
    """The recipe in file *path*, validated; raises :class:`RecipeError`
    (or :class:`OSError` when the file cannot be read)."""
    recipe = Recipe.from_file(path)
    recipe.validate()
    return recipe
