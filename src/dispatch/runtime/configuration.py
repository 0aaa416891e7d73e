"""The configuration ``-C FILE [-e ENV]...`` names, in either format: a
ZConfig ``dispatch.conf`` (``supervise.xml``) or a zocalo-style YAML file
(:mod:`dispatch.runtime.yamlconfig`).

A YAML file's ``dispatch`` sections say what a ``dispatch.conf`` says
(``zeo``, ``papa``, ``name``, ``restart-backoff`` ..., ``services`` mapping
section names to their keys, ``web``); they are turned into ZConfig text and
loaded with the same schema, so both formats have the same keys, defaults
and checks.  Either way the result has ``site``, the
:class:`~dispatch.runtime.yamlconfig.SiteConfiguration` (empty for ZConfig),
and ``eventlog``, a callable that sets up logging, or None.
"""

from __future__ import annotations

import argparse
import io
import os
import re
from collections.abc import Sequence
from typing import Any

from dispatch.errors import EXIT_USAGE, CommandError
from dispatch.runtime import yamlconfig
from dispatch.runtime.yamlconfig import ConfigurationFileError, SiteConfiguration

# Keys of a YAML dispatch section that are ZConfig sections, and their type.
SECTIONS = {"services": "service", "web": "web"}
# The ZConfig section whose key lists are keyed by section name.
NAMED_SECTIONS = frozenset({"services"})


def add_options(parser: argparse.ArgumentParser, required: bool) -> None:
    """``-C/--configure/--config-file FILE`` and ``-e/--environment ENV``."""
    default = os.environ.get(yamlconfig.CONFIG_VARIABLE)
    parser.add_argument(
        "-C",
        "--configure",
        "--config-file",
        dest="configure",
        metavar="FILE",
        default=default,
        required=required and not default,
        help=(
            "ZConfig file (conf/dispatch.conf) or zocalo YAML configuration "
            f"(default ${yamlconfig.CONFIG_VARIABLE})"
        ),
    )
    parser.add_argument(
        "-e",
        "--environment",
        dest="environments",
        metavar="ENV",
        action="append",
        default=[],
        help=(
            "YAML configuration: activate this environment (repeatable; default "
            f"${yamlconfig.DEFAULT_ENVIRONMENT_VARIABLE} or 'default')"
        ),
    )


def load_site(path: str | None, environments: Sequence[str]) -> SiteConfiguration:
    """The YAML configuration (an empty one without *path*, or for ZConfig)."""
    if path and yamlconfig.is_yaml(path):
        return yamlconfig.load(path, environments)
    if environments:
        raise CommandError(
            "-e/--environment needs a YAML configuration (-C FILE.yaml)", EXIT_USAGE
        )
    return SiteConfiguration()


def load_configuration(path: str, environments: Sequence[str] = ()) -> Any:
    """The supervise/web configuration in *path* (either format)."""
    from dispatch.runtime.supervisor import SCHEMA, check_configuration

    site = load_site(path, environments)
    if site.path is None:
        from dispatch.runtime.supervisor import load_configuration as load_zconfig

        config = load_zconfig(path)
    else:
        import ZConfig

        text, keys = zconfig_text(site)
        try:
            config, _ = ZConfig.loadConfigFile(
                ZConfig.loadSchema(SCHEMA), io.StringIO(text)
            )
        except ZConfig.ConfigurationError as error:
            line = getattr(error, "lineno", None)
            where = f" (at {keys[line - 1]})" if line and line <= len(keys) else ""
            raise ConfigurationFileError(
                f"{path}: {_sections_text(site)}: {error.message}{where}"
            ) from None
        check_configuration(config, f"{path}: {_sections_text(site)}")
        config.eventlog = site.apply_logging if site.logging else None
    config.site = site
    return config


def _sections_text(site: SiteConfiguration) -> str:
    if not site.dispatch_sections:
        return "no section of plugin dispatch"
    names = ", ".join(repr(name) for name in site.dispatch_sections)
    return f"section {names} (plugin dispatch)"


def zconfig_text(site: SiteConfiguration) -> tuple[str, list[str]]:
    """The merged dispatch sections as ZConfig text, and for each line the
    YAML key it comes from (for error messages)."""
    where = f"{site.path}: {_sections_text(site)}"
    if not site.dispatch_sections:
        raise ConfigurationFileError(
            f"{site.path}: environment(s) {', '.join(site.environments) or '(none)'}"
            " activate no section of plugin dispatch (choose one with -e ENV)"
        )
    if not site.dispatch.get("services"):
        raise ConfigurationFileError(
            f"{where}: services: name at least one service to keep running "
            "(services: {NAME: {instances: N}})"
        )
    lines: list[str] = []
    keys: list[str] = []
    for key, value in site.dispatch.items():
        if key in SECTIONS:
            _section_lines(where, key, value, lines, keys)
        else:
            lines.append(f"{key} {_value(where, key, value)}")
            keys.append(key)
    return "\n".join(lines) + "\n", keys


def _section_lines(
    where: str, key: str, value: Any, lines: list[str], keys: list[str]
) -> None:
    kind = SECTIONS[key]
    if key in NAMED_SECTIONS:
        if not isinstance(value, dict):
            raise ConfigurationFileError(
                f"{where}: {key}: expected a mapping of names to their settings"
            )
        named = value
    else:
        named = {"": value}
    for name, settings in named.items():
        path = f"{key}.{name}" if name else key
        settings = {} if settings is None else settings
        if not isinstance(settings, dict):
            raise ConfigurationFileError(f"{where}: {path}: expected a mapping")
        if name and re.search(r"[\s<>$]", str(name)):
            raise ConfigurationFileError(
                f"{where}: {path}: a name without spaces, <, > or $ expected"
            )
        lines.append(f"<{kind} {name}>" if name else f"<{kind}>")
        keys.append(path)
        for inner, inner_value in settings.items():
            inner_path = f"{path}.{inner}"
            lines.append(f"  {inner} {_value(where, inner_path, inner_value)}")
            keys.append(inner_path)
        lines.append(f"</{kind}>")
        keys.append(path)


def _value(where: str, key: str, value: Any) -> str:
    """A YAML scalar as ZConfig text (``$`` kept literal)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)) and "\n" not in str(value):
        text = str(value).replace("$", "$$")
        if text.strip():
            return text
    raise ConfigurationFileError(
        f"{where}: {key}: expected a number or a one-line text, not {value!r}"
    )


def database_target(config: Any, path: str, given: str | None) -> str:
    """What the dispatch processes of *config* (read from *path*) open: its
    ``<zodb>`` section, as ``zodb:PATH`` (each process opens the database
    itself, :mod:`dispatch.direct`), else its ``zeo`` key, else *given*
    (``--zeo`` or $DISPATCH_ZEO); "" when none says (a usage error where
    the database is opened)."""
    if getattr(config, "zodb", None) is None:
        return config.zeo or given or ""
    if config.zeo:
        raise CommandError(
            f"{path}: both a zeo key and a <zodb> section: keep one (zeo to use "
            "a server, <zodb> to open the database directly)",
            EXIT_USAGE,
        )
    from dispatch import direct

    return direct.PREFIX + os.path.abspath(path)
