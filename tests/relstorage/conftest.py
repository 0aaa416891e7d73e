"""Fixtures of the RelStorage tests: runzeo processes serving a RelStorage
on the session's real PostgreSQL (tests/support/postgresql.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import RunzeoProcess, free_port
from tests.support.postgresql import PostgreSQLCluster, relstorage_config


def runzeo_config(
    port: int,
    dsn: str,
    zeo_options: dict | None = None,
    relstorage_options: dict | None = None,
) -> str:
    """conf/zeo-relstorage.conf's shape, on *port* over database *dsn*
    (*relstorage_options*: ``<relstorage>`` keys, ``_`` for ``-``)."""
    lines = ["%import relstorage", "<zeo>", f"  address 127.0.0.1:{port}"]
    lines += [f"  {key} {value}" for key, value in (zeo_options or {}).items()]
    lines.append("</zeo>")
    section = relstorage_config(dsn, name="1", **(relstorage_options or {}))
    return "\n".join(lines) + "\n" + section


@pytest.fixture
def database(postgresql: PostgreSQLCluster) -> str:
    """The dsn of a new empty database for this test."""
    return postgresql.dsn(postgresql.create_database("test"))


class Servers:
    """runzeo processes over one database, stopped at the end of the test."""

    def __init__(self, directory: Path, dsn: str) -> None:
        self.directory = directory
        self.dsn = dsn
        self.started: list[RunzeoProcess] = []

    def start(self, blobs: bool = False, **zeo_options) -> RunzeoProcess:
        """A runzeo over the database; with *blobs*, keeping them in the
        database with a blob cache directory of its own (what several
        runzeo on several machines need: no shared file system)."""
        port = free_port()
        directory = self.directory / f"zeo-{port}"
        relstorage_options = {}
        if blobs:
            relstorage_options = {
                "blob_dir": str(directory / "blob-cache"),
                "shared_blob_dir": "false",
            }
        server = RunzeoProcess(
            directory,
            runzeo_config(port, self.dsn, zeo_options, relstorage_options),
            ("127.0.0.1", port),
        )
        self.started.append(server)
        return server.start()

    def stop(self) -> None:
        for server in self.started:
            server.stop()


@pytest.fixture
def servers(tmp_path: Path, database: str) -> Iterator[Servers]:
    started = Servers(tmp_path, database)
    yield started
    started.stop()
