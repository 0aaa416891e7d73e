"""From a ZConfig file (or text) to a ready :class:`StorageServer`.

Shared by ``runzeo`` and :func:`zeo.server`.  The schema is
``zeo/schema.xml``; the ``<zeo>`` and ``<ssl>`` section types are in
``zeo/server.xml``.
"""

import importlib
import io
import logging
import os
import ssl

import ZConfig

from .server import StorageServer

logger = logging.getLogger(__name__)

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "schema.xml")
_schema = None


def schema():
    global _schema
    if _schema is None:
        _schema = ZConfig.loadSchema(SCHEMA_PATH)
    return _schema


# The <zeo> section type alone: what a section holds when only the required
# address is given, i.e. the schema's defaults.
_ZEO_SECTION_SCHEMA_TEXT = """
<schema>
  <import package="zeo" file="server.xml"/>
  <section type="zeo" name="*" required="yes" attribute="zeo"/>
</schema>
"""
_zeo_section_schema = None

# Keys of <zeo> that say how runzeo runs (where it listens, TLS, the pid
# file) rather than how the StorageServer behaves.
RUNNER_KEYS = frozenset({"address", "ssl", "pid_filename"})


def zeo_section_schema():
    """The schema holding only the ``<zeo>`` section type of ``server.xml``."""
    global _zeo_section_schema
    if _zeo_section_schema is None:
        _zeo_section_schema = ZConfig.loadSchemaFile(
            io.StringIO(_ZEO_SECTION_SCHEMA_TEXT)
        )
    return _zeo_section_schema


def zeo_keys():
    """The attribute names of every key and section of ``<zeo>``."""
    return [info.attribute for _name, info in zeo_section_schema().gettype("zeo")]


def default_zeo_section():
    """A new ``<zeo>`` section with every key at its schema default.

    The address is required by the schema, so a placeholder is given and
    then cleared: the caller sets the address it listens on.
    """
    config, _handlers = ZConfig.loadConfigFile(
        zeo_section_schema(), io.StringIO("<zeo>\n  address 127.0.0.1:0\n</zeo>\n")
    )
    section = config.zeo
    section.address = None
    return section


def non_negative_seconds(value: str) -> float:
    """ZConfig datatype: a number of seconds, 0 or more."""
    seconds = float(value)
    if not seconds >= 0:
        raise ValueError(f"must be 0 or more seconds, not {value!r}")
    return seconds


def server_options(zeo_section):
    """The keyword arguments of :class:`StorageServer` a ``<zeo>`` section sets.

    Every key but the runner's goes to the StorageServer under its own
    name, so a new server key needs only its schema line and its parameter.
    """
    return {
        name: getattr(zeo_section, name)
        for name in zeo_keys()
        if name not in RUNNER_KEYS
    }


def load_config(path=None, text=None):
    """Parse a configuration file or text; raises ZConfig.ConfigurationError."""
    try:
        if text is not None:
            config, _handlers = ZConfig.loadConfigFile(schema(), io.StringIO(text))
        else:
            config, _handlers = ZConfig.loadConfig(schema(), path)
    except (KeyError, TypeError) as exc:
        # ZConfig checks a log format by formatting a record and lets
        # KeyError/TypeError out (found by fuzzing).
        raise ZConfig.ConfigurationError(f"bad log format? {exc!r}") from None
    return config


def _import_dotted(name):
    module_name, _, attribute = name.rpartition(".")
    if not module_name:
        raise ValueError(f"{name!r} is not a dotted name module.function")
    return getattr(importlib.import_module(module_name), attribute)


def server_ssl_context(section):
    """ZConfig datatype of ``<ssl>``: an SSLContext requiring client certs."""
    authenticate = section.authenticate
    if authenticate == "DYNAMIC":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    elif os.path.isdir(authenticate):
        context = ssl.create_default_context(
            ssl.Purpose.CLIENT_AUTH, capath=authenticate
        )
    elif os.path.isfile(authenticate):
        context = ssl.create_default_context(
            ssl.Purpose.CLIENT_AUTH, cafile=authenticate
        )
    else:
        raise ValueError(
            f"ssl authenticate {authenticate!r} is neither a file, a directory "
            "nor DYNAMIC"
        )
    password = None
    if section.password_function:
        password = _import_dotted(section.password_function)
    context.load_cert_chain(section.certificate, section.key, password)
    # ZEO's rules: every client must present a certificate we trust; the
    # server does not check client host names.
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = False
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


def open_storages(storage_sections):
    """Open every storage section: ``{name: storage}`` (unnamed = '1')."""
    storages = {}
    try:
        for section in storage_sections:
            name = section.name or "1"
            if name in storages:
                raise ValueError(f"two storages are named {name!r}")
            storages[name] = section.open()
    except BaseException:
        for storage in storages.values():
            storage.close()
        raise
    return storages


def build_server(zeo_section, storages):
    """A :class:`StorageServer` for the options of a ``<zeo>`` section."""
    return StorageServer(storages, **server_options(zeo_section))
