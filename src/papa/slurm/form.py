"""A spawn form's fields as a Slurm request, and the choices it offers.

Pure: no web framework, no kernel.  The dispatch console's ``/spawn`` page
uses it, and JupyterHub's spawner (papa.hub) renders the same fields (the
Jinja partial ``templates/spawn_fields.html`` of this package).  As jupyterhub-moss does,
form fields and URL query arguments are the same thing: unknown fields are
ignored, the first value of a repeated field is used, and a value holding a
newline is refused (it would reach the batch script).  The values are then
checked by :meth:`papa.slurm.SlurmSettings.check`, in the kernel, whose
:class:`~papa.errors.RequestError` names the field to show the error beside.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from .timespec import parse_time

# The form's Slurm fields, all request keys of SlurmSettings.check.
SLURM_FIELDS = (
    "partition",
    "nprocs",
    "memory",
    "ngpus",
    "runtime",
    "reservation",
    "output",
    "options",
    "environment",
    "path",
    "modules",
)
# What to run: one of these (a recipe name, or a command line).
TARGET_FIELDS = ("recipe", "command")
FIELDS = SLURM_FIELDS + TARGET_FIELDS + ("tab",)
# The simple tab's runtimes, in hours (moss offers 1 to 12 h).
SIMPLE_HOURS = tuple(range(1, 13))
# The simple tab's CPU counts; a quarter of the partition's largest is added.
SIMPLE_CPUS = (1, 2, 4)
# Longest value a field may hold: a form is no place for a script.
MAX_FIELD_LENGTH = 1000


@dataclasses.dataclass
class SpawnRequest:
    """A parsed form: the values as given (to fill the form again), the
    Slurm request, and the errors by field (empty when it may go on)."""

    values: dict[str, str]
    errors: dict[str, str]

    @property
    def slurm(self) -> dict[str, str]:
        """The Slurm request keys the form set (empty ones left out)."""
        return {key: self.values[key] for key in SLURM_FIELDS if self.values.get(key)}

    @property
    def wants_submission(self) -> bool:
        """True when the fields name something to run (a URL spawn)."""
        return any(self.values.get(key) for key in TARGET_FIELDS)

    def refuse(self, field: str, message: str) -> None:
        self.errors.setdefault(field, message)


def first_values(fields: Any, names: Iterable[str] = FIELDS) -> dict[str, str]:
    """``{name: first value}`` of a multi-valued mapping (aiohttp's query or
    form, a ``{name: [values]}`` dict, or a plain dict of values), for the
    fields *names* only (the console's by default; papa.hub gives moss's)."""
    values: dict[str, str] = {}
    for name in names:
        if hasattr(fields, "getall"):
            found = fields.getall(name, [])
        else:
            found = fields.get(name, [])
            if not isinstance(found, list | tuple):
                found = [found]
        if found:
            first = found[0]
            if isinstance(first, bytes):
                first = first.decode("utf-8", "replace")
            values[name] = first if isinstance(first, str) else str(first)
    return values


def parse(fields: Any) -> SpawnRequest:
    """The spawn request *fields* make (see the module doc)."""
    values = first_values(fields)
    request = SpawnRequest({key: value.strip() for key, value in values.items()}, {})
    for key, value in values.items():
        if "\n" in value or "\r" in value:
            request.refuse(key, f"{key} must not contain a newline")
        elif len(value) > MAX_FIELD_LENGTH:
            request.refuse(key, f"{key} is longer than {MAX_FIELD_LENGTH} characters")
    if request.values.get("recipe") and request.values.get("command"):
        request.refuse("command", "give a recipe or a command, not both")
    return request


@dataclasses.dataclass(frozen=True)
class Choice:
    """One button of the simple tab: its value, its label, and the
    partitions it fits (the page hides it for the others)."""

    value: str
    label: str
    partitions: tuple[str, ...]


def _seconds(text: object) -> int | None:
    try:
        return parse_time(str(text))
    except Exception:
        return None


def simple_choices(partitions: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The simple tab's buttons for ``list partitions``' rows (name -> row):
    its partitions, CPUs (1, 2, 4 and a quarter of the largest), GPUs and
    runtimes (1 to 12 h), each only for the partitions whose limits it fits."""
    simple = [
        name
        for name, row in partitions.items()
        if row.get("simple", True) and "missing" not in row
    ]
    cpus: dict[int, list[str]] = {}
    gpus: dict[int, list[str]] = {}
    hours: dict[int, list[str]] = {}
    environments: dict[str, list[str]] = {}
    for name in simple:
        row = partitions[name]
        largest = int(row.get("max_nprocs") or 1)
        for count in sorted({*SIMPLE_CPUS, max(1, largest // 4)}):
            if count <= largest:
                cpus.setdefault(count, []).append(name)
        if row.get("gpu"):
            for count in range(0, int(row.get("max_ngpus") or 0) + 1):
                gpus.setdefault(count, []).append(name)
        limit = _seconds(row.get("max_runtime", "INFINITE"))
        for hour in SIMPLE_HOURS:
            if limit is None or hour * 3600 <= limit:
                hours.setdefault(hour, []).append(name)
        for environment in _split(row.get("environments", "")):
            environments.setdefault(environment, []).append(name)
    return {
        "partitions": simple,
        "cpus": _choices(cpus, lambda count: f"{count} CPU" + "s" * (count > 1)),
        "gpus": _choices(gpus, lambda count: f"{count} GPU" + "s" * (count != 1)),
        "runtimes": [
            Choice(f"{hour}:00:00", f"{hour} h", tuple(names))
            for hour, names in sorted(hours.items())
        ],
        "environments": [
            Choice(name, name, tuple(names)) for name, names in environments.items()
        ],
    }


def _choices(found: dict[int, list[str]], label: Any) -> list[Choice]:
    return [
        Choice(str(count), label(count), tuple(names))
        for count, names in sorted(found.items())
    ]


def _split(text: object) -> Iterable[str]:
    return [part for part in str(text or "").split(",") if part]
