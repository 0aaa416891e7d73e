"""The spawn form JupyterHub shows (``/hub/spawn``): the partitions with
their live resources and moss's fields, so that the form and a spawn URL
(``/hub/spawn?partition=...``) give the same options."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import jinja2

if TYPE_CHECKING:
    from papa.hub.spawner import MOSlurmSpawner

# The spawn form's table of partitions may be this many seconds old.
FORM_SINFO_MAX_AGE = 5.0
_FORM = jinja2.Environment(
    loader=jinja2.PackageLoader("papa.hub", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
).get_template("option_form.html")


async def render_form(spawner: MOSlurmSpawner) -> str:
    """The spawn form: the partitions with their live resources, and moss's
    fields (sinfo is asked at most every few seconds, not per page)."""
    rows = await asyncio.to_thread(spawner.settings.table, FORM_SINFO_MAX_AGE)
    simple = [row["name"] for row in rows if spawner.partitions[row["name"]]["simple"]]
    if not simple:
        raise RuntimeError("No 'simple' partition defined: No default partition")
    environments = {
        name: settings["jupyter_environments"]
        for name, settings in spawner.partitions.items()
    }
    return _FORM.render(
        partitions=rows, default_partition=simple[0], environments=environments
    )
