"""The schema is the one place the ``<zeo>`` defaults are written.

Each test loads ``server.xml`` afresh with ZConfig (not through the cached
schema of :mod:`zeo.storageserver.config`) and compares every key of the
``<zeo>`` section with what runzeo, ``build_server``, ``StorageServer`` and
``zeo.server()`` use when the key is not given.
"""

import inspect
import io

import pytest
import ZConfig
from ZODB.MappingStorage import MappingStorage

from zeo import runzeo
from zeo.storageserver.adhoc import configuration_text
from zeo.storageserver.config import (
    RUNNER_KEYS,
    build_server,
    default_zeo_section,
    load_config,
    server_options,
)
from zeo.storageserver.server import StorageServer

SCHEMA_TEXT = """
<schema>
  <import package="zeo" file="server.xml"/>
  <section type="zeo" name="*" required="yes" attribute="zeo"/>
</schema>
"""


def schema_defaults():
    """``{attribute: default}`` of every ``<zeo>`` key but the address."""
    schema = ZConfig.loadSchemaFile(io.StringIO(SCHEMA_TEXT))
    config, _handlers = ZConfig.loadConfigFile(
        schema, io.StringIO("<zeo>\n  address 127.0.0.1:0\n</zeo>\n")
    )
    names = [info.attribute for _name, info in schema.gettype("zeo")]
    return {name: getattr(config.zeo, name) for name in names if name != "address"}


def test_the_schema_has_the_keys_this_test_expects():
    # Guards the test itself: a loader that found no keys would compare nothing.
    defaults = schema_defaults()
    assert defaults["invalidation_queue_size"] == 100
    assert defaults["msgpack"] is True
    assert set(defaults) >= {"read_only", "transaction_timeout", "ssl"}


def test_runzeo_without_a_file_uses_the_schema_defaults(tmp_path):
    arguments = runzeo._parse_arguments(
        ["-a", "127.0.0.1:0", "-f", str(tmp_path / "Data.fs")]
    )
    section, storages, eventlog = runzeo.load_options(arguments)
    assert {name: getattr(section, name) for name in schema_defaults()} == (
        schema_defaults()
    )
    assert section.address == ("127.0.0.1", 0)
    assert eventlog is None
    assert [storage.name for storage in storages] == ["1"]


def test_default_section_is_new_each_time():
    # runzeo writes the command line options into the section it gets.
    first = default_zeo_section()
    first.transaction_timeout = 5
    assert default_zeo_section().transaction_timeout is None


def test_adhoc_server_configuration_uses_the_schema_defaults():
    config = load_config(text=configuration_text())
    assert {name: getattr(config.zeo, name) for name in schema_defaults()} == (
        schema_defaults()
    )


def test_build_server_passes_every_server_key_to_storage_server():
    parameters = inspect.signature(StorageServer.__init__).parameters
    server_keys = set(schema_defaults()) - RUNNER_KEYS
    assert set(server_options(default_zeo_section())) == server_keys
    assert set(parameters) - {"self", "storages"} == server_keys


def test_storage_server_defaults_equal_the_schema_defaults():
    parameters = inspect.signature(StorageServer.__init__).parameters
    defaults = schema_defaults()
    server_keys = set(defaults) - RUNNER_KEYS
    python_defaults = {name: parameters[name].default for name in server_keys}
    assert python_defaults == {name: defaults[name] for name in server_keys}


def test_built_server_matches_one_built_without_options():
    # The same server whether the defaults come from the schema or Python.
    def observable(server):
        queue = server.invalidation_queues["1"]
        return (
            server.read_only,
            server.transaction_timeout,
            server.client_conflict_resolution,
            server.protocol,
            queue.size,
            queue.age,
        )

    from_schema = build_server(default_zeo_section(), {"1": MappingStorage()})
    from_python = StorageServer({"1": MappingStorage()})
    assert observable(from_schema) == observable(from_python)
    assert observable(from_schema) == (False, None, False, b"M5", 100, None)


def test_size_info_interval_is_read_and_validated():
    from ZConfig import ConfigurationError

    from zeo.storageserver.config import non_negative_seconds

    assert schema_defaults()["size_info_interval"] == 5.0
    config = load_config(
        text=configuration_text().replace("<zeo>", "<zeo>\n  size-info-interval 0.5", 1)
    )
    assert config.zeo.size_info_interval == 0.5
    assert non_negative_seconds("0") == 0.0
    for bad in ("-1", "nan", "soon"):
        with pytest.raises(ValueError):
            non_negative_seconds(bad)
    text = configuration_text().replace("<zeo>", "<zeo>\n  size-info-interval -1", 1)
    with pytest.raises(ConfigurationError, match="0 or more seconds"):
        load_config(text=text)
