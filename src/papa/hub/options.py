"""The spawn form's fields (or a spawn URL's query) read as jupyterhub-moss
reads them, and turned into a papa Slurm request.

:func:`user_options` takes the form data (``{field: [values]}``, or plain
values): the first value of a field counts, stripped; unknown fields are
ignored; ``gres`` and ``prologue`` never come from the user; ``mem`` is an
old name of ``memory``; ``output=true`` keeps the job's output
(``slurm-%j.out``), anything else throws it away (``/dev/null``); no text
may hold a newline (values end up in ``#SBATCH`` lines).

:func:`slurm_request` checks the options against the partition, with moss's
messages, adds what moss adds (``--exclusive`` when every CPU of a node or
``memory=0`` is asked for, the environment's prologue) and gives the request
papa's kernel submits.  One difference, on purpose: a runtime is read the
way Slurm reads it (``90`` is 90 minutes), where moss read a lone number as
hours.

Both raise :class:`OptionsError`, which names the field, so a form can show
the message next to it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any

from papa.errors import Error
from papa.slurm.partitions import (
    LIMITS_MAX_AGE_SECONDS,
    Environment,
    Partition,
    PartitionInfo,
    SlurmSettings,
)
from papa.slurm.timespec import INFINITE, parse_time

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
# Set by the spawner from the configuration, never by the user.
NOT_FROM_USER = ("gres", "prologue")
KEEP_OUTPUT = "slurm-%j.out"
DISCARD_OUTPUT = "/dev/null"
_MEMORY = re.compile(r"^[0-9]*([0-9]+[KMGT])?$")


class OptionsError(ValueError):
    """An option the spawn form must show again, with *message* next to
    *field* (``None``: the form as a whole)."""

    def __init__(self, field: str | None, message: str):
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


def user_options(formdata: Mapping[str, Any]) -> dict[str, Any]:
    """The user's options from the spawn form's (or URL's) fields."""
    fields: dict[str, str] = {}
    for key, value in formdata.items():
        if key in NOT_FROM_USER:
            continue
        if isinstance(value, list | tuple):
            if not value:
                continue
            value = value[0]
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        fields[key] = str(value).strip()
    if "mem" in fields and "memory" not in fields:
        fields["memory"] = fields["mem"]
    fields["output"] = (
        KEEP_OUTPUT if fields.get("output", "false") == "true" else DISCARD_OUTPUT
    )
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
    """Check *options* (from :func:`user_options`) against the partition and
    complete them as moss does (in place: ``options``, ``gres``,
    ``prologue`` and the environment fields); the request for papa.

    *site_prologue* (moss's ``req_prologue``) runs before the environment's
    own prologue; *site_options* (``req_options``) are extra sbatch options
    of the site's.
    """
    name = options["partition"]
    partition = settings.partitions.get(name)
    if partition is None:
        raise OptionsError("partition", f"Partition {name} is not available")
    info = _live(settings, name)
    max_runtime = partition.max_runtime or (info.max_runtime if info else INFINITE)
    if options["runtime"] and max_runtime is not INFINITE:
        seconds = parse_time(options["runtime"])
        if seconds is INFINITE or seconds > max_runtime:
            raise OptionsError(
                "runtime", "Requested runtime exceeds partition time limit"
            )
    max_nprocs = _limit(partition.max_nprocs, info, "max_nprocs")
    if max_nprocs and options["nprocs"] > max_nprocs:
        raise OptionsError("nprocs", "Unsupported number of CPU cores")
    gpu = partition.gpu if partition.gpu is not None else (info.gpu if info else "")
    max_ngpus = _limit(partition.max_ngpus, info, "max_ngpus")
    if options["ngpus"] > (max_ngpus or 0):
        raise OptionsError("ngpus", "Unsupported number of GPUs")
    extra = " ".join(part for part in (site_options, options["options"]) if part)
    if options["nprocs"] == max_nprocs or options["memory"] == "0":
        extra = f"--exclusive {extra}".strip()
    options["options"] = extra
    if options["ngpus"] > 0:
        if not gpu:
            raise OptionsError("ngpus", "GPU(s) not available for this partition")
        options["gres"] = gpu.format(options["ngpus"])
    options["prologue"] = _environment(options, partition, site_prologue)
    request = {
        "partition": name,
        "nprocs": str(options["nprocs"]),
        "options": extra,
        "output": "1" if options["output"] != DISCARD_OUTPUT else "0",
    }
    for key in ("runtime", "memory", "reservation", "prologue"):
        if options[key]:
            request[key] = options[key]
    if options["ngpus"]:
        request["ngpus"] = str(options["ngpus"])
    try:
        shlex.split(extra)
    except ValueError as error:
        raise OptionsError("options", f"cannot be split into words: {error}") from None
    return request


def _live(settings: SlurmSettings, name: str) -> PartitionInfo | None:
    try:
        return settings.live(max_age=LIMITS_MAX_AGE_SECONDS).get(name)
    except Error:
        # No sinfo: only the configured limits can be checked here (the
        # kernel checks again when it submits).
        return None


def _limit(configured: int | None, info: PartitionInfo | None, attribute: str) -> int:
    if configured is not None:
        return configured
    return getattr(info, attribute) if info is not None else 0


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
