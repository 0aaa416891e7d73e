"""The spawn page, ``/spawn``: jupyterhub-moss's page, for recipes and
commands.  A Simple tab (partition buttons, CPUs, GPUs, runtimes that fit
the partition) and an Advanced tab (every Slurm field), over a live table
of the partitions' idle and total nodes and cores.

The fields are parsed by :mod:`papa.slurm.form` and checked by the kernel
with the code ``make process`` uses (``check slurm``); a refusal is shown
beside its field, with status 400.  What is spawned:

- ``recipe=NAME``: ``NAME.json`` of the configured recipe directory,
  started as ``dispatch go`` starts it (:func:`dispatch.state.broker.start_run`),
  with the chosen Slurm fields applied to its Slurm steps; then the run's page;
- ``command=LINE``: the line (split as a shell would, run without one) as a
  Slurm job through papa; then the job's page.

Spawning through the URL (moss's ``/spawn?partition=P&nprocs=4&recipe=R``):
a GET naming a recipe or command submits at once when it carries
``Authorization: Bearer TOKEN``.  A browser's GET carries only ambient
credentials (the login cookie, a proxy's header), which a link on another
site would send too, so it gets the filled form to confirm with one click
(a POST with the CSRF token) instead.
"""

from __future__ import annotations

import logging
import re
import secrets
import shlex
import time
from pathlib import Path
from typing import Any

from aiohttp import web

import papa
from dispatch.state import broker, model
from dispatch.state.recipe import Recipe, RecipeError
from dispatch.web.console import both, console, is_api, json_response, render, see_other
from dispatch.web.errors import ConsoleError
from dispatch.web.jobs import job_path
from dispatch.web.runs import run_path
from papa.slurm import form

logger = logging.getLogger(__name__)

ROUTES = web.RouteTableDef()
# A recipe is named, never given as a path: nothing from a request reaches
# the filesystem but a name matched against the directory's listing.
RECIPE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def recipe_names(directory: str | None) -> list[str]:
    """The recipes of *directory* (``NAME.json``), sorted."""
    if not directory or not Path(directory).is_dir():
        return []
    return sorted(path.stem for path in Path(directory).glob("*.json"))


async def _page_data(request: web.Request, spawn: form.SpawnRequest) -> dict[str, Any]:
    here = console(request)
    notice = None
    try:
        partitions = await here.kernel.partitions()
    except (papa.Error, ConsoleError) as error:
        partitions = {}
        notice = getattr(error, "message", str(error))
    return {
        "partitions": partitions,
        "choices": form.simple_choices(partitions),
        "recipes": recipe_names(here.settings.recipe_dir),
        "values": spawn.values,
        "errors": spawn.errors,
        "notice": notice,
        "confirm": False,
        "tab": "advanced" if spawn.values.get("tab") == "advanced" else "simple",
    }


async def _answer_refused(
    request: web.Request, spawn: form.SpawnRequest
) -> web.StreamResponse:
    data = await _page_data(request, spawn)
    if is_api(request):
        return json_response(
            {"error": "the form has errors", "fields": spawn.errors}, 400
        )
    return render(request, "spawn.html", data, 400)


@both(ROUTES, "GET", "/spawn")
async def spawn_page(request: web.Request) -> web.StreamResponse:
    """The form (filled from the URL's fields), or a URL spawn."""
    here = console(request)
    spawn = form.parse(request.query)
    actor = here.gate.actor(request)
    if spawn.wants_submission and actor is not None and not actor.ambient:
        return await _submit(request, spawn, actor.name)
    if spawn.errors:
        return await _answer_refused(request, spawn)
    data = await _page_data(request, spawn)
    data["confirm"] = spawn.wants_submission
    if spawn.wants_submission:
        # A link's values may fit no button: show them all, as given.
        data["tab"] = "advanced"
    if is_api(request):
        data["choices"] = {
            key: [choice.__dict__ for choice in value] if key != "partitions" else value
            for key, value in data["choices"].items()
        }
    return (
        render(request, "spawn.html", data)
        if not is_api(request)
        else json_response(data)
    )


@both(ROUTES, "POST", "/spawn")
async def spawn_post(request: web.Request) -> web.StreamResponse:
    """Submit the form (login and, for a browser, the CSRF token)."""
    here = console(request)
    actor = await here.gate.require(request)
    spawn = form.parse(await request.post())
    return await _submit(request, spawn, actor.name)


async def _submit(
    request: web.Request, spawn: form.SpawnRequest, who: str
) -> web.StreamResponse:
    here = console(request)
    if not spawn.wants_submission:
        spawn.refuse("recipe", "choose a recipe or give a command to run")
    if spawn.errors:
        return await _answer_refused(request, spawn)
    slurm = spawn.slurm
    try:
        await here.kernel.call(lambda client: client.check_slurm(slurm))
    except papa.RequestError as error:
        spawn.refuse(error.field, error.message)
        return await _answer_refused(request, spawn)
    except papa.Error as error:
        spawn.refuse("partition", str(error))
        return await _answer_refused(request, spawn)
    if spawn.values.get("recipe"):
        recipe = _recipe(here.settings.recipe_dir, spawn, slurm)
        if recipe is None:
            return await _answer_refused(request, spawn)

        name = spawn.values["recipe"]

        def start(dispatch: model.Dispatch) -> str:
            return broker.start_run(dispatch, recipe, {}, name=name).id

        try:
            run_id = await here.write(start)
        except (RecipeError, ValueError) as error:
            spawn.refuse("recipe", str(error))
            return await _answer_refused(request, spawn)
        logger.info("%s spawned run %s of %s", who, run_id, spawn.values["recipe"])
        return _done(request, {"run": run_id}, run_path(run_id))
    return await _submit_command(request, spawn, slurm, who)


async def _submit_command(
    request: web.Request, spawn: form.SpawnRequest, slurm: dict[str, str], who: str
) -> web.StreamResponse:
    try:
        words = shlex.split(spawn.values["command"])
    except ValueError as error:
        spawn.refuse("command", f"the command cannot be split into words: {error}")
        return await _answer_refused(request, spawn)
    name = f"spawn.{time.strftime('%Y%m%d-%H%M%S')}.{secrets.token_hex(3)}"
    try:
        await console(request).kernel.call(
            lambda client: client.make_process(
                name, words[0], args=words[1:], slurm=slurm
            )
        )
    except papa.RequestError as error:
        spawn.refuse(error.field, error.message)
        return await _answer_refused(request, spawn)
    except papa.Error as error:
        spawn.refuse("command", str(error))
        return await _answer_refused(request, spawn)
    logger.info("%s spawned job %s: %s", who, name, words)
    return _done(request, {"job": name}, job_path(name))


def _done(request: web.Request, data: dict[str, Any], page: str) -> web.Response:
    if is_api(request):
        return json_response({**data, "page": page})
    return see_other(page)


def _recipe(
    directory: str | None, spawn: form.SpawnRequest, slurm: dict[str, str]
) -> Recipe | None:
    """The named recipe with *slurm* applied to its Slurm steps (None, with
    the error on the recipe field, when it cannot be read)."""
    name = spawn.values["recipe"]
    if not RECIPE_NAME.match(name) or name not in recipe_names(directory):
        known = ", ".join(recipe_names(directory)) or "none (set recipe-dir)"
        spawn.refuse("recipe", f"no recipe {name!r}; known: {known}")
        return None
    assert directory is not None  # recipe_names found it there
    try:
        recipe = Recipe.from_file(Path(directory) / f"{name}.json")
        data = recipe.to_dict()
        for step in data.values():
            if isinstance(step, dict) and isinstance(step.get("slurm"), dict):
                step["slurm"] = {**step["slurm"], **slurm}
        recipe = Recipe(data)
        recipe.validate()
    except (RecipeError, OSError, UnicodeDecodeError) as error:
        spawn.refuse("recipe", f"{name}: {error}")
        return None
    return recipe
