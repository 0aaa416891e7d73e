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


def load_config(path=None, text=None):
    """Parse a configuration file or text; raises ZConfig.ConfigurationError."""
    if text is not None:
        config, _handlers = ZConfig.loadConfigFile(schema(), io.StringIO(text))
    else:
        config, _handlers = ZConfig.loadConfig(schema(), path)
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
    return StorageServer(
        storages,
        read_only=zeo_section.read_only,
        invalidation_queue_size=zeo_section.invalidation_queue_size,
        invalidation_age=zeo_section.invalidation_age,
        transaction_timeout=zeo_section.transaction_timeout,
        client_conflict_resolution=zeo_section.client_conflict_resolution,
        msgpack=zeo_section.msgpack,
    )
