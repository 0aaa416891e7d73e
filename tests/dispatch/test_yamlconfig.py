"""Site configuration as zocalo sites write it (YAML, plugins,
environments): read by dispatch as real zocalo reads it, and every bad file
refused with the file, the section or key, and what was expected."""

import json
import os
import re
import subprocess
import textwrap

import pytest

from dispatch.errors import EXIT_USAGE, CommandError
from dispatch.runtime import yamlconfig
from dispatch.runtime.configuration import load_configuration, load_site
from tests.conftest import PYTHON
from tests.dispatch.conftest import HERE
from tests.support import SRC, peer_env, require_peer

SITE = HERE / "data" / "zocalo-site.yaml"
ENVIRONMENTS = ["live", "test", "partial", "staging", None]
ZOCALO_STORAGE = """
import json, sys
import zocalo.configuration
for name in sys.argv[2:]:
    configuration = zocalo.configuration.from_file(sys.argv[1])
    configuration.activate([name] if name != "-" else None)
    print(json.dumps(configuration.storage))
"""


def test_the_same_file_gives_zocalo_and_dispatch_the_same_storage():
    peer = require_peer("workflows")
    names = [name or "-" for name in ENVIRONMENTS]
    completed = subprocess.run(
        [PYTHON, "-c", ZOCALO_STORAGE, str(SITE), *names],
        capture_output=True,
        text=True,
        timeout=60,
        env=peer_env(peer),
        check=True,
    )
    theirs = [json.loads(line) for line in completed.stdout.splitlines()]
    ours = [load_site(str(SITE), [name] if name else []) for name in ENVIRONMENTS]
    assert len(theirs) == len(ours) == 5
    for zocalo_storage, site in zip(theirs, ours, strict=True):
        zocalo_storage.pop("plugin")
        assert site.storage == zocalo_storage
    assert ours[0].storage["token"] == "not-a-real-secret"  # the secrets file
    assert ours[1].storage["oxford_comma"] is True
    assert ours[4].environments == ("default",)


def test_dispatch_sections_become_the_supervise_configuration(monkeypatch):
    live = load_configuration(str(SITE), ["live"])
    assert (live.zeo, live.papa, live.restart_backoff) == (
        "zeo.example.org:8100",
        "20202",
        2.0,
    )
    assert live.stable_after == 30.0  # the schema's default
    services = [(s.getSectionName(), s.instances) for s in live.services]
    assert services == [("greeter", 2), ("commandrunner", 1)]
    assert live.web.bind == "127.0.0.1:8181"
    assert live.eventlog is None  # live has graylog, not logging
    assert live.site.command_line() == ["-C", str(SITE), "-e", "live"]
    staging = load_configuration(str(SITE), ["staging"])  # an alias of test
    assert staging.zeo == "127.0.0.1:8200" and staging.web is None
    monkeypatch.setenv(yamlconfig.DEFAULT_ENVIRONMENT_VARIABLE, "test")
    assert load_configuration(str(SITE)).zeo == "127.0.0.1:8200"
    # Environments apply in order: the later dispatch section wins.
    both = load_configuration(str(SITE), ["live", "test"])
    assert both.zeo == "127.0.0.1:8200"
    assert [(s.getSectionName(), s.instances) for s in both.services] == [
        ("greeter", 1),
        ("commandrunner", 1),
    ]


def test_the_logging_section_is_a_dict_config(tmp_path):
    log = tmp_path / "site.log"
    path = write(
        tmp_path,
        f"""
        d: {{plugin: dispatch, services: {{greeter: {{}}}}}}
        log:
          plugin: logging
          handlers:
            file: {{class: logging.FileHandler, filename: {log}}}
          loggers:
            site.test: {{level: INFO, handlers: [file]}}
        environments: {{default: [d, log]}}
        """,
    )
    config = load_configuration(str(path))
    config.eventlog()
    import logging

    logging.getLogger("site.test").info("configured from YAML")
    for handler in logging.getLogger("site.test").handlers:
        handler.close()
    logging.getLogger("site.test").handlers.clear()
    assert "configured from YAML" in log.read_text()


def write(tmp_path, body, name="site.yaml"):
    path = tmp_path / name
    path.write_text("version: 1\n" + textwrap.dedent(body))
    return path


BAD_FILES = {
    "not YAML": (
        "d: {plugin: dispatch\nenvironments: {}\n",
        "site.yaml, line 3, column 13: not valid YAML: expected ',' or '}'",
    ),
    "unknown plugin": (
        "d: {plugin: rabbitmq}\n",
        "section 'd': unknown plugin 'rabbitmq' (dispatch uses dispatch, logging",
    ),
    "no plugin key": ("d: {zeo: x}\n", "section 'd': the section lacks the mandatory"),
    "undefined section": (
        "environments: {live: [d]}\n",
        "environment 'live' names section 'd', which is not defined",
    ),
    "alias circle": (
        "environments: {a: b, b: a}\n",
        "environment aliases go round in a circle: a -> b -> a",
    ),
    "alias of nothing": (
        "environments: {a: b}\n",
        "environment 'a' is an alias of 'b', which is not defined",
    ),
    "unknown key": (
        "d: {plugin: dispatch, zeoo: x, services: {g: {}}}\n"
        "environments: {default: [d]}\n",
        "section 'd' (plugin dispatch): 'zeoo' is not a known key name (at zeoo)",
    ),
    "bad value": (
        "d: {plugin: dispatch, services: {g: {instances: many}}}\n"
        "environments: {default: [d]}\n",
        "invalid literal for int() with base 10: 'many' (at services.g.instances)",
    ),
    "a list for a value": (
        "d: {plugin: dispatch, zeo: [a, b], services: {g: {}}}\n"
        "environments: {default: [d]}\n",
        "zeo: expected a number or a one-line text, not ['a', 'b']",
    ),
    "negative instances": (
        "d: {plugin: dispatch, services: {g: {instances: -1}}}\n"
        "environments: {default: [d]}\n",
        "<service g>: instances must be 0 or more, not -1",
    ),
    "no dispatch section": (
        "s: {plugin: storage}\nenvironments: {default: [s]}\n",
        "environment(s) default activate no section of plugin dispatch",
    ),
    "no services": (
        "d: {plugin: dispatch}\nenvironments: {default: [d]}\n",
        "services: name at least one service to keep running",
    ),
    "version 2": ("", "version 2: only version 1 is understood"),
    "service name with a space": (
        "d: {plugin: dispatch, services: {a b: {}}}\nenvironments: {default: [d]}\n",
        "services.a b: a name without spaces, <, > or $ expected",
    ),
    "secrets file missing": (
        "d: absent.yaml\nenvironments: {default: [d]}\n",
        "section 'd': cannot read",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_file_names_what_is_wrong(tmp_path, case):
    body, expected = BAD_FILES[case]
    path = tmp_path / "site.yaml"
    version = "2" if case == "version 2" else "1"
    path.write_text(f"version: {version}\n{body}")
    with pytest.raises(CommandError) as raised:
        load_configuration(str(path))
    assert raised.value.status == EXIT_USAGE
    assert str(path) in str(raised.value)
    assert expected in str(raised.value)


def test_unknown_environment_and_e_without_yaml(tmp_path):
    with pytest.raises(CommandError, match=r"unknown environment 'prod' \(environ"):
        load_configuration(str(SITE), ["prod"])
    zconfig = tmp_path / "dispatch.conf"
    zconfig.write_text("<service greeter>\n</service>\n")
    assert load_configuration(str(zconfig)).site.path is None
    with pytest.raises(CommandError, match="-e/--environment needs a YAML"):
        load_configuration(str(zconfig), ["live"])


def test_commands_refuse_a_bad_file_with_status_2(tmp_path):
    path = write(tmp_path, "d: {plugin: dispatch}\n")
    for command in ("supervise", "web", "service Greeter"):
        completed = subprocess.run(
            [PYTHON, "-m", "dispatch.cli", *command.split(), "-C", str(path)]
            + ["-e", "nowhere"],
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ, PYTHONPATH=str(SRC)),
        )
        assert completed.returncode == 2, completed.stderr
        assert "unknown environment 'nowhere'" in completed.stderr


def test_the_documented_example_is_accepted(tmp_path):
    text = (HERE.parents[1] / "docs" / "dispatch.rst").read_text()
    block = re.search(
        r"the environment named ``default``\)::\n\n((?:    .*\n|\n)+)", text
    )
    path = tmp_path / "site.yaml"
    path.write_text(textwrap.dedent(block.group(1)))
    (tmp_path / "secrets.yaml").write_text("plugin: storage\npassword: x\n")
    config = load_configuration(str(path), ["live"])
    assert config.zeo == "zeo.example.org:8100" and config.heartbeat_interval == 20
    assert config.site.storage == {
        "zocalo.recipe_directory": "/site/recipes",
        "password": "x",
    }
    assert config.eventlog is not None


def test_a_plugin_another_package_registers_for_zocalo_is_accepted(tmp_path):
    # An installed distribution registering a zocalo configuration plugin,
    # as ispyb-api does for its `ispyb` sections.
    info = tmp_path / "packages" / "site_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: site-plugin\n")
    (info / "entry_points.txt").write_text(
        "[zocalo.configuration.plugins]\nispyb = site_plugin:Ispyb\n"
    )
    path = write(
        tmp_path,
        """
        ispyb: {plugin: ispyb, credentials: /site/ispyb.cfg}
        constants: {plugin: storage, beamline: i04}
        environments: {live: [ispyb, constants]}
        """,
    )
    script = "import sys; from dispatch.runtime.yamlconfig import load\n"
    script += "print(load(sys.argv[1], ['live']).storage)"
    completed = subprocess.run(
        [PYTHON, "-c", script, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=f"{SRC}:{info.parent}"),
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "{'beamline': 'i04'}"
    # Without the package, the same file is refused.
    with pytest.raises(CommandError, match="unknown plugin 'ispyb'"):
        load_site(str(path), ["live"])


def test_the_dispatcher_finds_recipes_where_zocalo_s_storage_says(monkeypatch):
    from dispatch.runtime.dispatcher import Dispatcher

    monkeypatch.delenv("DISPATCH_RECIPES", raising=False)
    monkeypatch.delenv("DISPATCH_FILTERS", raising=False)
    dispatcher = Dispatcher()
    dispatcher.config = load_site(str(SITE), ["live"])
    dispatcher.initializing()
    assert dispatcher.recipe_directory == "/site/recipes"
    monkeypatch.setenv("DISPATCH_RECIPES", "/elsewhere")
    dispatcher.initializing()
    assert dispatcher.recipe_directory == "/elsewhere"
