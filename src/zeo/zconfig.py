"""ZConfig support: ``%import zeo`` then ``<clientstorage>`` (or ``<zeoclient>``).

``<zeoclient>`` is defined by ZODB's own component, and ZConfig refuses to
redefine a section type ("type name cannot be redefined").  Its datatype,
``ZODB.config.ZEOClient``, imports ``ZEO.ClientStorage`` when opened.  So
``%import zeo`` (which imports this module to resolve our datatypes) makes
``ZEOClient.open`` build *our* :class:`ClientStorage` instead.  The switch
is process-wide and happens only in processes that ``%import zeo``; it is
what lets tools that write ``<zeoclient>`` (zodbshootout) use this client.
"""

import importlib
import logging
import ssl as ssl_module

import ZODB.config

logger = logging.getLogger(__name__)


def _addresses(config):
    return [server.address for server in config.server]


def client_ssl(section):
    """Build ``(SSLContext, server_hostname)`` from an ``<ssl>`` section."""
    authenticate = section.authenticate
    options = {}
    if authenticate:
        import os

        if os.path.isdir(authenticate):
            options["capath"] = authenticate
        else:
            options["cafile"] = authenticate
    context = ssl_module.create_default_context(
        ssl_module.Purpose.SERVER_AUTH, **options
    )
    if section.certificate:
        password = None
        if section.password_function:
            module, _, name = section.password_function.rpartition(".")
            password = getattr(importlib.import_module(module), name)
        context.load_cert_chain(section.certificate, section.key, password)
    context.check_hostname = bool(section.check_hostname)
    return context, section.server_hostname


# <clientstorage> keys given to ClientStorage as the argument of the same
# name (cache-path is its "cache").
_CLIENTSTORAGE_KEYS = (
    "storage",
    "cache_size",
    "client",
    "var",
    "name",
    "blob_dir",
    "shared_blob_dir",
    "blob_cache_size",
    "blob_cache_size_check",
    "read_only",
    "read_only_fallback",
    "server_sync",
    "wait",
    "wait_timeout",
    "disconnect_poll",
    "min_disconnect_poll",
    "max_disconnect_poll",
    "client_label",
    "username",
    "password",
    "realm",
)
# The keys of ZODB's <zeoclient> we honour.  Its poll defaults (5 s, 300 s)
# were ZEO 4's: max-disconnect-poll is not passed, and like ZEO 5 we retry
# at least every max(min-disconnect-poll, 10) seconds, never 5 minutes.
_ZEOCLIENT_KEYS = (
    "blob_dir",
    "shared_blob_dir",
    "storage",
    "cache_size",
    "name",
    "client",
    "var",
    "min_disconnect_poll",
    "wait",
    "read_only",
    "read_only_fallback",
    "username",
    "password",
    "realm",
)
# <zeoclient> keys that only some ZODB versions have: passed when set.
_ZEOCLIENT_OPTIONAL_KEYS = ("blob_cache_size", "blob_cache_size_check", "client_label")


def _open_client_storage(config, keys, **options):
    """A ClientStorage for the servers of *config* and its *keys*."""
    from .clientstorage.storage import ClientStorage

    arguments = {key: getattr(config, key) for key in keys}
    return ClientStorage(_addresses(config), **arguments, **options)


class ClientStorageConfig(ZODB.config.BaseConfig):
    """``<clientstorage>``: opens a :class:`zeo.ClientStorage`."""

    def open(self):
        config = self.config
        options = {"cache": config.cache_path}
        if config.ssl is not None:
            options["ssl"], options["ssl_server_hostname"] = config.ssl
        return _open_client_storage(config, _CLIENTSTORAGE_KEYS, **options)


def _open_zeoclient(self):
    """``ZODB.config.ZEOClient.open`` after ``%import zeo``: our client."""
    config = self.config
    options = {}
    for key in _ZEOCLIENT_OPTIONAL_KEYS:
        value = getattr(config, key, None)
        if value is not None:
            options[key] = value
    return _open_client_storage(config, _ZEOCLIENT_KEYS, **options)


if getattr(ZODB.config.ZEOClient, "open", None) is not _open_zeoclient:
    ZODB.config.ZEOClient.open = _open_zeoclient
    logger.debug("<zeoclient> sections now open zeo.ClientStorage")
