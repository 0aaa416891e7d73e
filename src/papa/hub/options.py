"""The spawn form's fields (or a spawn URL's query) read as jupyterhub-moss
reads them, and turned into a papa Slurm request.

:func:`user_options` takes the form data (``{field: [values]}``, or plain
values) as moss's ``UserOptions`` model does: the first value of a field
counts (read by papa's own :func:`papa.slurm.form.first_values`), stripped;
unknown fields are ignored; ``gres`` and ``prologue`` never come from the
user; ``mem`` is an old name of ``memory``; ``output=true`` keeps the job's
output (``slurm-%j.out``, which completed options hold), anything else
throws it away (``/dev/null``); no text may hold a newline (values end up
in ``#SBATCH`` lines).

:func:`slurm_request` chooses the environment and adds what moss adds
(``--exclusive`` when every CPU of a node or ``memory=0`` is asked for, the
prologues), then has papa's :meth:`~papa.slurm.partitions.SlurmSettings.check`
(the one parser of Slurm requests, the kernel's) check it against the
partition; a refusal over a limit is worded as moss words it.  One
difference, on purpose: a runtime is read the way Slurm reads it (``90`` is
90 minutes), where moss read a lone number as hours.

Both raise :class:`OptionsError`, which names the field, so a form can show
the message next to it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from papa.errors import Error, LimitError, RequestError
from papa.slurm.form import first_values
from papa.slurm.partitions import (
    LIMITS_MAX_AGE_SECONDS,
    Environment,
    Partition,
    SlurmSettings,
)
from papa.slurm.timespec import parse_time

TEXT_FIELDS = (
    "partition",
    "runtime",
    "memory",
    "reservation",
    "options",
    "output",
    "environment_id",
    "environment_path",
    "environment_modules",
    "default_url",
    "root_dir",
)
# What the user may set (gres and prologue are set by the spawner from the
# configuration; mem is an old name of memory).
USER_FIELDS = TEXT_FIELDS + ("nprocs", "ngpus", "mem")
KEEP_OUTPUT = "slurm-%j.out"
DISCARD_OUTPUT = "/dev/null"
_MEMORY = re.compile(r"^[0-9]*([0-9]+[KMGT])?$")
# moss's words for a request over a partition's limit, by field.
LIMIT_MESSAGES = {
    "nprocs": "Unsupported number of CPU cores",
    "ngpus": "Unsupported number of GPUs",
    "runtime": "Requested runtime exceeds partition time limit",
}


class OptionsError(ValueError):
    """An option the spawn form must show again, with *message* next to
    *field* (``None``: the form as a whole)."""

    def __init__(self, field: str | None, message: str):
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


def user_options(formdata: Mapping[str, Any]) -> dict[str, Any]:
    """The user's options from the spawn form's (or URL's) fields."""
    fields = {
        key: value.strip() for key, value in first_values(formdata, USER_FIELDS).items()
    }
    if "mem" in fields and "memory" not in fields:
        fields["memory"] = fields["mem"]
    # KEEP_OUTPUT: options completed already (start() reads them again).
    keep = fields.get("output", "false") in ("true", KEEP_OUTPUT)
    fields["output"] = KEEP_OUTPUT if keep else DISCARD_OUTPUT
    if not fields.get("partition"):
        raise OptionsError("partition", "Field required")
    options: dict[str, Any] = {key: fields.get(key, "") for key in TEXT_FIELDS}
    for key in TEXT_FIELDS:
        if "\n" in options[key] or "\r" in options[key]:
            raise OptionsError(key, "Must not contain newline")
    options["nprocs"] = _count(fields, "nprocs", default=1, minimum=1)
    options["ngpus"] = _count(fields, "ngpus", default=0, minimum=0)
    if options["default_url"] and not options["default_url"].startswith("/"):
        raise OptionsError("default_url", "Must start with /")
    if options["runtime"]:
        try:
            parse_time(options["runtime"])
        except Error as error:
            raise OptionsError("runtime", str(error)) from None
    if options["memory"] and not _MEMORY.match(options["memory"]):
        raise OptionsError("memory", "Error in memory syntax")
    options["gres"] = ""
    options["prologue"] = ""
    return options


def _count(fields: dict[str, str], key: str, default: int, minimum: int) -> int:
    text = fields.get(key, "")
    if text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise OptionsError(key, f"must be a whole number, not {text!r}") from None
    if value < minimum:
        raise OptionsError(
            key,
            "Input should be greater than 0"
            if minimum == 1
            else "Input should be greater than or equal to 0",
        )
    return value


def slurm_request(
    options: dict[str, Any],
    settings: SlurmSettings,
    site_prologue: str = "",
    site_options: str = "",
) -> dict[str, str]:
    """Complete *options* (from :func:`user_options`) as moss does (in place:
    ``options``, ``gres``, ``prologue`` and the environment fields) and have
    papa check them against the partition; the request for papa.

    *site_prologue* (moss's ``req_prologue``) runs before the environment's
    own prologue; *site_options* (``req_options``) are extra sbatch options
    of the site's.
    """
    name = options["partition"]
    partition = settings.partitions.get(name)
    if partition is None:
        raise OptionsError("partition", f"Partition {name} is not available")
    own = options["options"]
    if _exclusive(options, partition, settings) and "--exclusive" not in own.split():
        # In the options, as moss: completed options checked again (when
        # the server starts) stay the same.
        own = options["options"] = f"--exclusive {own}".strip()
    options["prologue"] = _environment(options, partition, site_prologue)
    request = {
        "partition": name,
        "nprocs": str(options["nprocs"]),
        "output": "1" if options["output"] != DISCARD_OUTPUT else "0",
    }
    extra = " ".join(part for part in (site_options, own) if part)
    for key, value in (
        ("runtime", options["runtime"]),
        ("memory", options["memory"]),
        ("reservation", options["reservation"]),
        ("prologue", options["prologue"]),
        ("ngpus", str(options["ngpus"] or "")),
        ("options", extra),
    ):
        if value:
            request[key] = value
    try:
        checked = settings.check(request)
    except RequestError as error:
        message = error.message
        if isinstance(error, LimitError):
            message = LIMIT_MESSAGES.get(error.field, message)
        raise OptionsError(error.field, message) from None
    for directive in checked.directives:
        if directive.startswith("--gres="):
            options["gres"] = directive.removeprefix("--gres=")
    return request


def _exclusive(
    options: dict[str, Any], partition: Partition, settings: SlurmSettings
) -> bool:
    """moss's rule: a whole node (every CPU, or ``memory=0``) is exclusive."""
    if options["memory"] == "0":
        return True
    largest = partition.max_nprocs
    if largest is None:
        info = settings.live(max_age=LIMITS_MAX_AGE_SECONDS).get(partition.name)
        largest = info.max_nprocs if info is not None else 0
    return options["nprocs"] == largest


def _environment(options: dict[str, Any], partition: Partition, site: str) -> str:
    """Choose the environment as moss does; the job's prologue."""
    environments = partition.environments
    if not any(
        options[key]
        for key in ("environment_id", "environment_path", "environment_modules")
    ):
        options["environment_id"] = next(iter(environments), "")
    chosen = environments.get(options["environment_id"])
    if chosen is None:
        # A custom environment: always put on the PATH.
        chosen = Environment(
            "custom",
            path=options["environment_path"],
            modules=options["environment_modules"],
        )
    else:
        options["environment_path"] = chosen.path
        options["environment_modules"] = chosen.modules
    return "\n".join(([site] if site else []) + chosen.prologue_lines())
