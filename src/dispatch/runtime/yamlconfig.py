"""Site configuration as zocalo sites write it: YAML with plugins and
environments (the format of zocalo 1.5's ``zocalo.configuration``).

A file is ``version: 1`` and named sections, each a mapping with a
``plugin`` key (or the name of another YAML file holding one, relative to
this file, for secrets); ``environments`` maps an environment name to the
sections it activates: a list, a mapping of groups to lists (groups taken
alphabetically, ``plugins`` last), or the name of another environment (an
alias)::

    version: 1
    dispatch-live:
      plugin: dispatch
      zeo: zeo.example.org:8100
      services:
        greeter: {instances: 2}
    storage:
      plugin: storage
      zocalo.recipe_directory: /site/recipes
    logging:
      plugin: logging
      root: {level: INFO}
    environments:
      live: [dispatch-live, storage, logging]
      default: live

dispatch understands three plugins: ``dispatch`` (what a ``dispatch.conf``
says, as YAML), ``storage`` (any values, for services:
``self.config.storage``) and ``logging`` (a :func:`logging.config.dictConfig`
mapping).  The plugins only zocalo uses (``graylog``, ``slurm`` ..., and
any registered in the entry point group ``zocalo.configuration.plugins``)
are accepted and left alone, so one file serves both; any other plugin
name is an error.  Environments are chosen with ``-e NAME`` (repeatable, activated
in order); without one, ``$ZOCALO_DEFAULT_ENV`` or the environment named
``default``.  Only :func:`yaml.safe_load` reads the files.
"""

from __future__ import annotations

import copy
import functools
import logging
import logging.config
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from dispatch.errors import EXIT_USAGE, CommandError

logger = logging.getLogger(__name__)

CONFIG_VARIABLE = "ZOCALO_CONFIG"
DEFAULT_ENVIRONMENT_VARIABLE = "ZOCALO_DEFAULT_ENV"
DEFAULT_ENVIRONMENT = "default"
# Top-level keys that are not sections (zocalo's own reserved names).
RESERVED = frozenset({"version", "environments", "include"})
PLUGINS = ("dispatch", "logging", "storage")
# zocalo 1.5's other plugins (its zocalo.configuration.plugins entry points
# and the transports' sections): a file shared with zocalo tools names them.
ZOCALO_ONLY_PLUGINS = frozenset(
    {
        "graylog",
        "iris",
        "jmx",
        "opentelemetry",
        "pika",
        "rabbitmqapi",
        "slurm",
        "smtp",
        "stomp",
        "transport",
    }
)
# Where zocalo (and packages extending it) register configuration plugins.
ENTRY_POINT_GROUP = "zocalo.configuration.plugins"
# A file is YAML when it is named so, or begins (after comments) with this.
YAML_SUFFIXES = (".yaml", ".yml")
VERSION_LINE = re.compile(r"^version\s*:")


class ConfigurationFileError(CommandError):
    """A configuration file that cannot be used: names the file, the
    section or key, and what was expected (exit status 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


@dataclass
class SiteConfiguration:
    """The sections of the chosen environments, merged in order."""

    # The file, and the environments activated (in order).
    path: str | None = None
    environments: tuple[str, ...] = ()
    # The ``dispatch`` sections, merged: a later section's keys win, and
    # mappings (``services``, ``web``) are merged key by key.
    dispatch: dict[str, Any] = field(default_factory=dict)
    # The names of the ``dispatch`` sections merged, in order.
    dispatch_sections: list[str] = field(default_factory=list)
    # Every ``storage`` section's values, later ones winning.
    storage: dict[str, Any] = field(default_factory=dict)
    # ``(section name, dictConfig mapping)`` of each ``logging`` section.
    logging: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def command_line(self) -> list[str]:
        """``-C FILE -e ENV...``: the same configuration for a child."""
        if self.path is None:
            return []
        arguments = ["-C", os.path.abspath(self.path)]
        for environment in self.environments:
            arguments += ["-e", environment]
        return arguments

    def apply_logging(self) -> None:
        """Configure logging as the ``logging`` sections say."""
        for name, settings in self.logging:
            try:
                logging.config.dictConfig(settings)
            except (ValueError, TypeError, AttributeError, ImportError) as error:
                raise ConfigurationFileError(
                    f"{self.path}: section {name!r} (plugin logging): {error}"
                ) from None


def is_yaml(path: str) -> bool:
    """Whether the configuration file *path* is YAML (not ZConfig)."""
    if path.lower().endswith(YAML_SUFFIXES):
        return True
    try:
        with open(path, encoding="utf-8") as stream:
            for line in stream:
                if line.strip() and not line.lstrip().startswith("#"):
                    return bool(VERSION_LINE.match(line))
    except (OSError, UnicodeDecodeError):
        pass  # the loader says what is wrong with the file
    return False


def _read_yaml(path: Path, what: str) -> Any:
    import yaml

    try:
        with path.open(encoding="utf-8") as stream:
            return yaml.safe_load(stream)
    except OSError as error:
        raise ConfigurationFileError(
            f"{what}: cannot read {path}: {error.strerror}"
        ) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigurationFileError(
            f"{path}{where}: not valid YAML: {error.problem or error}"
        ) from None
    except yaml.YAMLError as error:
        raise ConfigurationFileError(f"{path}: not valid YAML: {error}") from None


@dataclass
class ConfigurationFile:
    """A YAML configuration file read and checked, not yet activated."""

    path: Path
    # Section name: its settings, or the Path of the file that holds them.
    sections: dict[str, dict[str, Any] | Path]
    # Environment name: the sections it activates, in order.
    environments: dict[str, list[str]]

    def _section(self, name: str) -> dict[str, Any]:
        settings = self.sections[name]
        if isinstance(settings, Path):
            content = _read_yaml(settings, f"{self.path}: section {name!r}")
            settings = _check_section(settings, name, content)
            self.sections[name] = settings
        return settings

    def activate(self, environments: Sequence[str] = ()) -> SiteConfiguration:
        """The sections of *environments* (or of the default one) merged."""
        chosen = list(environments) or self.default_environments()
        site = SiteConfiguration(str(self.path), tuple(chosen))
        for environment in chosen:
            if environment not in self.environments:
                known = ", ".join(sorted(self.environments)) or "none"
                raise ConfigurationFileError(
                    f"{self.path}: unknown environment {environment!r} "
                    f"(environments: {known})"
                )
            for name in self.environments[environment]:
                _activate_section(site, name, self._section(name))
        return site

    def default_environments(self) -> list[str]:
        chosen = os.environ.get(DEFAULT_ENVIRONMENT_VARIABLE)
        if chosen:
            return [chosen]
        return [DEFAULT_ENVIRONMENT] if DEFAULT_ENVIRONMENT in self.environments else []


def _activate_section(site: SiteConfiguration, name: str, settings: dict) -> None:
    plugin = settings["plugin"]
    values = {key: value for key, value in settings.items() if key != "plugin"}
    if plugin == "dispatch":
        site.dispatch_sections.append(name)
        for key, value in values.items():
            earlier = site.dispatch.get(key)
            if isinstance(earlier, dict) and isinstance(value, dict):
                value = {**earlier, **value}
            site.dispatch[key] = value
    elif plugin == "storage":
        site.storage.update(values)
    elif plugin == "logging":
        # As zocalo's logging plugin: a dictConfig that keeps other loggers.
        values = copy.deepcopy(values)
        values.pop("verbose", None)  # zocalo's -v levels; dispatch has none
        values.setdefault("version", 1)
        values.setdefault("disable_existing_loggers", False)
        site.logging.append((name, values))
    else:
        logger.debug("section %r: plugin %s is zocalo's, not used", name, plugin)


@functools.cache
def _other_plugins() -> frozenset[str]:
    """Plugins accepted and ignored: zocalo's own, and any other package's
    registered where zocalo looks for them (``ispyb`` ...), so that a site's
    file that zocalo reads is never refused by dispatch."""
    installed = {point.name for point in entry_points(group=ENTRY_POINT_GROUP)}
    return ZOCALO_ONLY_PLUGINS | installed


def _check_section(path: Path, name: str, settings: Any) -> dict[str, Any]:
    where = f"{path}: section {name!r}"
    if not isinstance(settings, dict):
        raise ConfigurationFileError(
            f"{where}: expected a mapping with a 'plugin' key (or the name of "
            f"a YAML file holding one), not {type(settings).__name__}"
        )
    plugin = settings.get("plugin")
    if not isinstance(plugin, str) or not plugin:
        raise ConfigurationFileError(
            f"{where}: the section lacks the mandatory 'plugin' key"
        )
    if plugin not in PLUGINS and plugin not in _other_plugins():
        raise ConfigurationFileError(
            f"{where}: unknown plugin {plugin!r} (dispatch uses "
            f"{', '.join(PLUGINS)}; zocalo's {', '.join(sorted(ZOCALO_ONLY_PLUGINS))}"
            f" and those installed in the entry point group {ENTRY_POINT_GROUP} "
            "are accepted and ignored)"
        )
    return settings


def _environment_sections(path: Path, name: str, definition: Any) -> list[str]:
    """The sections environment *name* lists (as zocalo flattens them)."""
    where = f"{path}: environment {name!r}"
    if isinstance(definition, list):
        definition = {"plugins": definition}
    if not isinstance(definition, dict):
        raise ConfigurationFileError(
            f"{where}: expected a list of sections, a mapping of groups to "
            f"lists, or another environment's name; not {type(definition).__name__}"
        )
    groups = sorted(group for group in definition if group != "plugins")
    sections: list[str] = []
    for group in [*groups, "plugins"]:
        members = definition.get(group, [])
        if isinstance(members, str):
            members = [members]
        if not isinstance(members, list) or not all(
            isinstance(member, str) for member in members
        ):
            raise ConfigurationFileError(
                f"{where}: group {group!r} must be a section name or a list of them"
            )
        sections += [member for member in members if member not in sections]
    return sections


def _environments(path: Path, raw: Any, sections: dict) -> dict[str, list[str]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigurationFileError(
            f"{path}: 'environments' must map environment names to sections"
        )
    aliases = {name: target for name, target in raw.items() if isinstance(target, str)}
    resolved = {
        str(name): _environment_sections(path, str(name), definition)
        for name, definition in raw.items()
        if name not in aliases
    }
    for name, target in aliases.items():
        seen = [name]
        while target in aliases:
            if target in seen:
                raise ConfigurationFileError(
                    f"{path}: environment aliases go round in a circle: "
                    + " -> ".join([*seen, target])
                )
            seen.append(target)
            target = aliases[target]
        if target not in resolved:
            raise ConfigurationFileError(
                f"{path}: environment {name!r} is an alias of {target!r}, "
                "which is not defined"
            )
        resolved[str(name)] = resolved[target]
    for name, members in resolved.items():
        for member in members:
            if member not in sections:
                raise ConfigurationFileError(
                    f"{path}: environment {name!r} names section {member!r}, "
                    "which is not defined"
                )
    return resolved


def read(path: str) -> ConfigurationFile:
    """Read and check the YAML configuration file *path*."""
    file = Path(path)
    content = _read_yaml(file, str(file))
    if not isinstance(content, dict) or "version" not in content:
        raise ConfigurationFileError(
            f"{path}: expected a zocalo configuration: a mapping with 'version: 1'"
        )
    if content["version"] != 1:
        raise ConfigurationFileError(
            f"{path}: version {content['version']!r}: only version 1 is understood"
        )
    if content.get("include"):
        raise ConfigurationFileError(
            f"{path}: 'include' is not supported (nor by zocalo 1.5)"
        )
    sections: dict[str, dict[str, Any] | Path] = {}
    for name, settings in content.items():
        if name in RESERVED:
            continue
        if isinstance(settings, str):
            # Another file holds it (secrets): read when it is activated.
            sections[str(name)] = (file.parent / settings).expanduser()
        else:
            sections[str(name)] = _check_section(file, str(name), settings)
    environments = _environments(file, content.get("environments"), sections)
    return ConfigurationFile(file, sections, environments)


def load(path: str, environments: Sequence[str] = ()) -> SiteConfiguration:
    """The configuration in *path* with *environments* activated."""
    return read(path).activate(environments)
