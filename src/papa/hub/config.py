"""jupyterhub-moss's ``partitions`` setting, read unchanged.

A moss site writes ``c.MOSlurmSpawner.partitions = {NAME: {...}}`` with the
keys below; the same dictionary works here.  It is checked as moss checks
it, with moss's rules and messages (unknown keys refused, a GPU count forced
to 0 when ``gpu`` is ``""``, an environment needs a ``path`` or ``modules``),
and turned into papa's own :class:`~papa.slurm.partitions.Partition` and
:class:`~papa.slurm.partitions.Environment`, so that requests are checked by
the same :class:`~papa.slurm.partitions.SlurmSettings` a papa kernel uses.

``None`` for ``gpu``, ``max_ngpus``, ``max_nprocs`` or ``max_runtime`` means
"what sinfo says", as in moss.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from papa.slurm.partitions import Environment, Partition, SlurmSettings

PARTITION_KEYS = {
    "architecture": str,
    "description": str,
    "gpu": (str, type(None)),
    "max_ngpus": (int, type(None)),
    "max_nprocs": (int, type(None)),
    "max_runtime": (int, type(None)),
    "simple": bool,
    "jupyter_environments": dict,
}
ENVIRONMENT_KEYS = {
    "description": str,
    "path": str,
    "modules": str,
    "add_to_path": bool,
    "prologue": str,
}


class ConfigurationError(ValueError):
    """The ``partitions`` setting breaks one of moss's rules; the text names
    the partition, the environment and the key."""


def check_partitions(value: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """*value* checked and completed with moss's defaults (the form shows
    every key, so every key is filled in)."""
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"partitions must be a dict of partition name -> settings, "
            f"not {type(value).__name__}"
        )
    return {
        str(name): _partition(str(name), settings) for name, settings in value.items()
    }


def slurm_settings(partitions: Mapping[str, Any]) -> SlurmSettings:
    """papa's settings for a (checked) ``partitions`` dictionary."""
    checked = check_partitions(partitions)
    return SlurmSettings(
        [
            Partition(
                name=name,
                architecture=settings["architecture"],
                description=settings["description"],
                gpu=settings["gpu"],
                max_ngpus=settings["max_ngpus"],
                max_nprocs=settings["max_nprocs"],
                max_runtime=settings["max_runtime"],
                simple=settings["simple"],
                environments={
                    key: Environment(name=key, **environment)
                    for key, environment in settings["jupyter_environments"].items()
                },
            )
            for name, settings in checked.items()
        ]
    )


def _partition(name: str, settings: Any) -> dict[str, Any]:
    where = f"partition {name!r}"
    _known_keys(where, settings, PARTITION_KEYS)
    if "jupyter_environments" not in settings:
        raise ConfigurationError(f"{where}: jupyter_environments is required")
    result: dict[str, Any] = {
        "architecture": "",
        "description": "",
        "gpu": None,
        "max_ngpus": None,
        "max_nprocs": None,
        "max_runtime": None,
        "simple": True,
    }
    result.update({key: value for key, value in settings.items()})
    for key in ("max_nprocs", "max_runtime"):
        if result[key] is not None and result[key] <= 0:
            raise ConfigurationError(f"{where}: {key}: Value must be strictly positive")
    if result["max_ngpus"] is not None and result["max_ngpus"] < 0:
        raise ConfigurationError(f"{where}: max_ngpus: Value must be positive")
    if result["gpu"] == "":
        # moss: "" switches GPUs off, whatever the count says.
        result["max_ngpus"] = 0
    elif result["gpu"] is not None and "{}" not in result["gpu"]:
        raise ConfigurationError(
            f"{where}: gpu must be a --gres template holding {{}} for the count, "
            f"like 'gpu:V100:{{}}', not {result['gpu']!r}"
        )
    environments = result["jupyter_environments"]
    result["jupyter_environments"] = {
        str(key): _environment(f"{where}, environment {key!r}", environment)
        for key, environment in environments.items()
    }
    return result


def _environment(where: str, settings: Any) -> dict[str, Any]:
    _known_keys(where, settings, ENVIRONMENT_KEYS)
    result: dict[str, Any] = {
        "description": "",
        "path": "",
        "modules": "",
        "add_to_path": True,
        "prologue": "",
    }
    result.update(settings)
    result["description"] = result["description"].strip()
    if not result["description"]:
        raise ConfigurationError(f"{where}: description is required")
    if not result["path"] and not result["modules"]:
        raise ConfigurationError(
            f"{where}: Jupyter environment path or modules is required"
        )
    return result


def _known_keys(where: str, settings: Any, known: dict[str, Any]) -> None:
    if not isinstance(settings, Mapping):
        raise ConfigurationError(
            f"{where}: must be a dict, not {type(settings).__name__}"
        )
    for key, value in settings.items():
        if key not in known:
            raise ConfigurationError(
                f"{where}: unknown key {key!r}; known: {', '.join(known)}"
            )
        wanted = known[key]
        # bool is an int in Python: a count given as True is refused too.
        if (isinstance(value, bool) and wanted is not bool) or not isinstance(
            value, wanted
        ):
            raise ConfigurationError(
                f"{where}: {key} must be {_type_names(wanted)}, not {value!r}"
            )


def _type_names(wanted: Any) -> str:
    kinds = wanted if isinstance(wanted, tuple) else (wanted,)
    return " or ".join(
        "None" if kind is type(None) else kind.__name__ for kind in kinds
    )
