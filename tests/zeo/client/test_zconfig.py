"""``%import zeo`` with ``<clientstorage>`` and ``<zeoclient>`` builds our storage."""

import pytest
import ZODB.config

from zeo.clientstorage import ClientStorage


@pytest.mark.parametrize("section", ["clientstorage", "zeoclient"])
def test_database_from_config(start_server, section, tmp_path):
    server = start_server(msgpack=True)
    extra = (
        "  server-sync true\n  wait-timeout 45\n" if section == "clientstorage" else ""
    )
    text = (
        "%import zeo\n"
        "<zodb>\n"
        f"  <{section}>\n"
        f"    server 127.0.0.1:{server.port}\n"
        "    storage 1\n"
        "    cache-size 1MB\n"
        f"    blob-dir {tmp_path / 'blobs'}\n"
        f"  {extra}"
        f"  </{section}>\n"
        "</zodb>\n"
    )
    db = ZODB.config.databaseFromString(text)
    try:
        storage = db.storage
        assert isinstance(storage, ClientStorage)
        assert storage.cache.maxsize == 1 << 20
        assert storage.blob_dir == str(tmp_path / "blobs")
        if section == "clientstorage":
            assert storage._server_sync is True
            assert storage._io.wait_timeout == 45
        with db.transaction() as conn:
            conn.root()["configured"] = section
        with db.transaction() as conn:
            assert conn.root()["configured"] == section
    finally:
        db.close()


def test_storage_from_config_with_persistent_cache(start_server, tmp_path):
    server = start_server(msgpack=False)
    cache = tmp_path / "c.zec"
    storage = ZODB.config.storageFromString(
        "%import zeo\n"
        "<clientstorage>\n"
        f"  server 127.0.0.1:{server.port}\n"
        f"  cache-path {cache}\n"
        "  read-only true\n"
        "</clientstorage>\n"
    )
    try:
        assert storage.cache.path == str(cache)
        assert storage.isReadOnly()
    finally:
        storage.close()
    assert cache.exists()


def test_missing_server_is_a_config_error():
    import ZConfig

    with pytest.raises(ZConfig.ConfigurationError, match="server"):
        ZODB.config.storageFromString(
            "%import zeo\n<clientstorage>\n</clientstorage>\n"
        )
