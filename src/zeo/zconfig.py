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


class ClientStorageConfig(ZODB.config.BaseConfig):
    """``<clientstorage>``: opens a :class:`zeo.ClientStorage`."""

    def open(self):
        from .clientstorage.storage import ClientStorage

        config = self.config
        options = {}
        if config.ssl is not None:
            options["ssl"], options["ssl_server_hostname"] = config.ssl
        return ClientStorage(
            _addresses(config),
            storage=config.storage,
            cache_size=config.cache_size,
            cache=config.cache_path,
            client=config.client,
            var=config.var,
            name=config.name,
            blob_dir=config.blob_dir,
            shared_blob_dir=config.shared_blob_dir,
            blob_cache_size=config.blob_cache_size,
            blob_cache_size_check=config.blob_cache_size_check,
            read_only=config.read_only,
            read_only_fallback=config.read_only_fallback,
            server_sync=config.server_sync,
            wait=config.wait,
            wait_timeout=config.wait_timeout,
            disconnect_poll=config.disconnect_poll,
            min_disconnect_poll=config.min_disconnect_poll,
            max_disconnect_poll=config.max_disconnect_poll,
            client_label=config.client_label,
            username=config.username,
            password=config.password,
            realm=config.realm,
            **options,
        )


def _open_zeoclient(self):
    """``ZODB.config.ZEOClient.open`` after ``%import zeo``: our client."""
    from .clientstorage.storage import ClientStorage

    config = self.config
    options = {}
    for key in ("blob_cache_size", "blob_cache_size_check", "client_label"):
        value = getattr(config, key, None)
        if value is not None:
            options[key] = value
    return ClientStorage(
        _addresses(config),
        blob_dir=config.blob_dir,
        shared_blob_dir=config.shared_blob_dir,
        storage=config.storage,
        cache_size=config.cache_size,
        name=config.name,
        client=config.client,
        var=config.var,
        # ZODB's defaults (5 s, 300 s) were ZEO 4's; like ZEO 5 we retry at
        # least every max(min-disconnect-poll, 10) seconds, never 5 minutes.
        min_disconnect_poll=config.min_disconnect_poll,
        wait=config.wait,
        read_only=config.read_only,
        read_only_fallback=config.read_only_fallback,
        username=config.username,
        password=config.password,
        realm=config.realm,
        **options,
    )


if getattr(ZODB.config.ZEOClient, "open", None) is not _open_zeoclient:
    ZODB.config.ZEOClient.open = _open_zeoclient
    logger.debug("<zeoclient> sections now open zeo.ClientStorage")
