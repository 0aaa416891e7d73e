"""The spawn form JupyterHub shows (``/hub/spawn``): the web console's own
fields (``papa/slurm/templates/spawn_fields.html``: the Simple and Advanced
tabs over the live partitions table) with moss's field names, so that the
form and a spawn URL (``/hub/spawn?partition=...``) give the same options.
JupyterHub wraps it in its own ``<form>`` with its own xsrf token; the tabs'
script is served by the handler :func:`papa.hub.set_config` installs."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import jinja2
from tornado.web import HTTPError

from papa.errors import Error
from papa.hub.options import USER_FIELDS, OptionsError
from papa.slurm import assets
from papa.slurm.form import Choice, first_values, simple_choices

if TYPE_CHECKING:
    from papa.hub.spawner import MOSlurmSpawner

# The spawn form's table of partitions may be this many seconds old.
FORM_SINFO_MAX_AGE = 5.0
# Where set_config's handler serves spawn.js, under the hub's prefix.
SCRIPT_PATH = "form/spawn.js"
# The fields a refused form is shown again with (and its tab).
FORM_FIELDS = USER_FIELDS + ("tab",)
_FORM = jinja2.Environment(
    loader=jinja2.ChoiceLoader(
        [jinja2.PackageLoader("papa.hub", "templates"), assets.loader()]
    ),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
).get_template("option_form.html")


def script_url(hub_prefix: str) -> str:
    """The URL of the form's script (``/hub/form/spawn.js?v=HASH``)."""
    prefix = hub_prefix if hub_prefix.endswith("/") else hub_prefix + "/"
    return f"{prefix}{SCRIPT_PATH}?v={assets.spawn_script_version()}"


def form_page(
    rows: list[dict[str, Any]],
    hub_prefix: str,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    descriptions: dict[str, str] | None = None,
) -> str:
    """The form for ``list partitions`` rows (papa's
    :meth:`~papa.slurm.partitions.SlurmSettings.table`), filled with a
    refused form's *values* and its *errors* (by field: each is shown beside
    its field; ``""``: the form as a whole), its environments labelled with
    their *descriptions* (environment id -> description)."""
    partitions = {row["name"]: row for row in rows}
    choices = simple_choices(partitions)
    if not choices["partitions"]:
        raise RuntimeError("No 'simple' partition defined: No default partition")
    labels = descriptions or {}

    def labelled(names: dict[str, list[str]]) -> list[Choice]:
        return [
            Choice(name, labels.get(name) or name, tuple(where))
            for name, where in names.items()
        ]

    choices["environments"] = labelled(
        {choice.value: list(choice.partitions) for choice in choices["environments"]}
    )
    # The Advanced tab's select: every partition's environments.
    everywhere: dict[str, list[str]] = {}
    for row in rows:
        for name in filter(None, str(row.get("environments", "")).split(",")):
            everywhere.setdefault(name, []).append(row["name"])
    values = dict(values or {})
    return _FORM.render(
        partitions=partitions,
        choices=choices,
        values=values,
        errors=dict(errors or {}),
        tab=values.get("tab") if values.get("tab") == "advanced" else "simple",
        hub=True,
        environment_choices=labelled(everywhere),
        script=script_url(hub_prefix),
    )


async def render_form(spawner: MOSlurmSpawner) -> str:
    """The spawn form: the partitions with their live resources, and moss's
    fields (sinfo is asked at most every few seconds, not per page); after
    a refusal, the values given and the message beside its field."""
    rows = await asyncio.to_thread(spawner.settings.table, FORM_SINFO_MAX_AGE)
    values, errors = spawner.form_state or ({}, {})
    spawner.form_state = None
    descriptions = {
        key: environment.description
        for partition in spawner.settings.partitions.values()
        for key, environment in partition.environments.items()
    }
    return form_page(rows, spawner.hub.base_url, values, errors, descriptions)


async def checked_fields(spawner: MOSlurmSpawner, fields: dict) -> dict[str, Any]:
    """``options_from_form`` and ``options_from_query``: the options
    completed as moss completes them, checked before the spawn starts; a
    refused one is a 400 with moss's message, and the form JupyterHub shows
    again has the values and the message beside the field
    (:func:`render_form`)."""
    spawner.form_state = None
    try:
        chosen, _ = await spawner.checked_options(fields)
    except (OptionsError, Error) as error:
        field = getattr(error, "field", None) or ""
        message = getattr(error, "message", str(error))
        spawner.form_state = (first_values(fields, FORM_FIELDS), {field: message})
        raise HTTPError(400, message) from None
    return chosen


async def check_user_options(spawner: MOSlurmSpawner, user_options: dict) -> None:
    """JupyterHub's ``apply_user_options`` hook (options given through the
    REST API): a refused option is a 400 with moss's message, before
    anything is submitted."""
    try:
        await spawner.checked_options(user_options)
    except (OptionsError, Error) as error:
        raise HTTPError(400, str(error)) from None
