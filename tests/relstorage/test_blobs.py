"""Blobs through several runzeo over one PostgreSQL: each server keeps
them in the database (RelStorage's ``shared-blob-dir false``) with a blob
cache directory of its own, so a blob committed through one server is
loaded through another, which has never seen its file."""

from __future__ import annotations

from pathlib import Path

import transaction
from ZODB.blob import Blob

import zeo
from tests.relstorage.test_runzeo import TIMEOUT, open_db_after
from tests.support import wait_until


def open_blob_db(server, cache: Path):
    return zeo.DB(
        server.address, server_sync=True, wait_timeout=TIMEOUT, blob_dir=str(cache)
    )


def read_blob(connection) -> bytes:
    connection.transaction_manager.begin()
    with connection.root()["blob"].open("r") as file:
        return file.read()


def test_a_blob_committed_through_one_server_loads_through_another(servers, tmp_path):
    first, second = servers.start(blobs=True), servers.start(blobs=True)
    writer = open_blob_db(first, tmp_path / "writer-cache")
    try:
        with writer.transaction() as connection:
            blob = connection.root()["blob"] = Blob()
            with blob.open("w") as file:
                file.write(b"written through the first server")
        reader = open_db_after(second, writer)
        reader.close()
        reader = open_blob_db(second, tmp_path / "reader-cache")
        try:
            one = writer.open(transaction.TransactionManager())
            two = reader.open(transaction.TransactionManager())
            assert read_blob(two) == b"written through the first server"
            # The second server fetched the blob from PostgreSQL into its
            # own cache: the first server's files were never there.
            cached = list((second.directory / "blob-cache").rglob("*.blob"))
            assert cached, "the second server's blob cache holds no blob"
            # A new revision through the second reaches the first's client
            # (an invalidation from the first server's poll).
            with two.root()["blob"].open("w") as file:
                file.write(b"rewritten through the second server")
            two.transaction_manager.commit()
            wait_until(
                lambda: read_blob(one) == b"rewritten through the second server",
                TIMEOUT,
                message="the first server's client to read the new revision",
            )
            one.close()
            two.close()
        finally:
            reader.close()
    finally:
        writer.close()
    assert first.is_alive() and second.is_alive()
