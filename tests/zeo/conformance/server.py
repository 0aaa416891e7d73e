"""A storage server in a real subprocess, for the conformance suites.

The conformance suites run ZODB's storage test mixins against a client
storage connected over loopback to a server process started exactly as an
operator would start it: ``python -m zeo.runzeo -C <conf>``.  With
``--impl real`` (see ``conftest.py``) the same harness starts real ZEO's
``ZEO.runzeo`` instead and connects real ZEO's client, which checks the
harness itself and records which mixin tests real ZEO 6.2 passes.

A server may serve several storages, so one process per test class can give
every test a fresh FileStorage of its own (see ``StoragePool``).
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import PEERS, free_port
from tests.support import RunzeoProcess, read_greeting
from tests.support.postgresql import relstorage_config

#: Which implementation runs on each side, by ``--impl`` value: "ours" and
#: "real" (ZEO 6.2) put the same one on both sides; "real-client" runs real
#: ZEO's client against our server, "real-server" our client against real
#: ZEO's server (the whole suites as an interoperability check).
SIDES = {
    "ours": ("ours", "ours"),
    "real": ("real", "real"),
    "real-client": ("real", "ours"),
    "real-server": ("ours", "real"),
}

#: ``conftest.py`` sets it from ``--impl``; the environment variable lets a
#: plain ``pytest tests`` run pick it too.
IMPLEMENTATION = os.environ.get("ZEOPAPA_CONFORMANCE_IMPL", "ours")

#: What the server stores in: "file" (FileStorage, the default) or
#: "relstorage" (RelStorage on the session's PostgreSQL, a database per
#: storage); ``conftest.py`` sets it from ``--storage``.
STORAGE = os.environ.get("ZEOPAPA_CONFORMANCE_STORAGE", "file")

#: The session's PostgreSQLCluster when RelStorage is served (set by a
#: fixture: the conformance conftest, or tests/relstorage/test_conformance.py).
POSTGRESQL = None
#: The database every RelStorage one is copied from (schema installed once).
TEMPLATE_DATABASE = "conformance_template"


def client_implementation() -> str:
    return SIDES[IMPLEMENTATION][0]


def server_implementation() -> str:
    return SIDES[IMPLEMENTATION][1]


#: How long a server may take to start or stop on a loaded 2-core machine.
START_DEADLINE_SECONDS = 60.0
STOP_DEADLINE_SECONDS = 30.0

#: The first frame a ZEO 5 server sends on a new connection, per encoding.
GREETINGS = {True: b"M5", False: b"Z5"}


@dataclass
class StorageSpec:
    """One storage section of a server configuration.

    ``kind`` is ``"file"`` (no blobs) or ``"blob"`` (blobs in ``blob_dir``).
    Without ``dsn`` the storage is a FileStorage (in a ``<blobstorage>`` for
    blobs); with it a RelStorage on that PostgreSQL database, whose
    ``blob-dir`` is RelStorage's cache of the blobs it keeps in the
    database, or with ``shared_blobs`` the one directory that holds them
    (RelStorage's ``shared-blob-dir``: what clients that share the server's
    blob directory need).
    """

    name: str
    path: Path
    kind: str = "file"
    blob_dir: Path | None = None
    pack_gc: bool = True
    #: RelStorage's database: the storage is a RelStorage.
    dsn: str | None = None
    #: RelStorage's ``shared-blob-dir``.
    shared_blobs: bool = False

    def config(self) -> str:
        if self.dsn is not None:
            return self._relstorage_config(self.dsn)
        filestorage_name = "" if self.kind == "blob" else f" {self.name}"
        lines = [f"<filestorage{filestorage_name}>", f"  path {self.path}"]
        if not self.pack_gc:
            lines.append("  pack-gc false")
        lines.append("</filestorage>")
        if self.kind == "blob":
            lines = [
                f"<blobstorage {self.name}>",
                f"  blob-dir {self.blob_dir}",
                *("  " + line for line in lines),
                "</blobstorage>",
            ]
        return "\n".join(lines) + "\n"

    def _relstorage_config(self, dsn: str) -> str:
        options = {} if self.pack_gc else {"pack_gc": "false"}
        if self.kind == "blob":
            options["blob_dir"] = str(self.blob_dir)
            options["shared_blob_dir"] = "true" if self.shared_blobs else "false"
        return relstorage_config(dsn, name=self.name, **options)


class ServerProcess(RunzeoProcess):
    """``runzeo`` in a subprocess on a free loopback port.

    ``options`` are ``<zeo>`` keys with ``_`` for ``-`` (``msgpack``,
    ``client_conflict_resolution``, ``read_only``...); booleans are written
    as ``true``/``false``.
    """

    def __init__(self, directory: Path, storages: list[StorageSpec], **options):
        self.storages = storages
        self.options = {"msgpack": True, **options}
        port = free_port()
        super().__init__(
            directory,
            self._config(port),
            ("127.0.0.1", port),
            peer=PEERS / "zeo" if server_implementation() == "real" else None,
            config_name=f"zeo-{port}.conf",
            output_name=f"zeo-{port}.log",
            start_timeout=START_DEADLINE_SECONDS,
            stop_timeout=STOP_DEADLINE_SECONDS,
        )

    def _config(self, port: int) -> str:
        lines = ["<zeo>", f"  address 127.0.0.1:{port}"]
        for key, value in self.options.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            lines.append(f"  {key.replace('_', '-')} {value}")
        lines.append("</zeo>")
        if any(spec.dsn is not None for spec in self.storages):
            lines.insert(0, "%import relstorage")
        return "\n".join(lines) + "\n" + "".join(s.config() for s in self.storages)

    def config(self) -> str:
        return self.config_text

    def start(self) -> ServerProcess:
        """Start, and check the server greets in the encoding asked for."""
        super().start()
        expected = GREETINGS[bool(self.options["msgpack"])]
        greeting = read_greeting(self.address)
        if greeting != expected:
            self.stop()
            raise RuntimeError(
                f"server greeted with {greeting!r}, expected {expected!r}"
            )
        return self


def new_dsn() -> str:
    """A new database for one RelStorage, with RelStorage's schema (copied
    from a template made once: installing it takes seconds each time)."""
    cluster = POSTGRESQL
    if cluster is None:
        raise RuntimeError(
            "RelStorage conformance runs need the session's PostgreSQL "
            "(harness.POSTGRESQL, set by a fixture)"
        )
    if not getattr(cluster, "conformance_template", False):
        import ZODB.config

        cluster.execute(f"CREATE DATABASE {TEMPLATE_DATABASE}")
        text = relstorage_config(cluster.dsn(TEMPLATE_DATABASE))
        ZODB.config.storageFromString("%import relstorage\n" + text).close()
        cluster.conformance_template = True
    name = f"conformance_{next(_DATABASES)}"
    cluster.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DATABASE}")
    return cluster.dsn(name)


_DATABASES = itertools.count(1)


def make_client(address, storage: str, **options):
    """A client storage of the implementation under test."""
    if client_implementation() == "real":
        import ZEO

        return ZEO.client(address, storage=storage, **options)
    import zeo

    return zeo.client(address, storage=storage, **options)


class StoragePool:
    """Fresh storages handed out from as few server processes as possible.

    Every test wants a storage nobody used before.  A pool starts a server
    with ``size`` storages and hands them out one by one; when they run out
    (or the server died) it stops that server and starts the next.
    """

    def __init__(
        self,
        label: str,
        size: int,
        kind: str = "file",
        pack_gc=True,
        backend: str = "file",
        shared_blobs: bool = False,
        **options,
    ):
        self.directory = Path(tempfile.mkdtemp(prefix=f"conformance-{label}-"))
        self.size = max(1, size)
        self.kind = kind
        self.pack_gc = pack_gc
        #: "file" or "relstorage" (a database each, see new_dsn).
        self.backend = backend
        self.shared_blobs = shared_blobs
        self.options = options
        self.server: ServerProcess | None = None
        self.free: list[StorageSpec] = []
        self.generation = 0

    def acquire(self, count: int = 1) -> tuple[ServerProcess, list[StorageSpec]]:
        """``count`` fresh storages served by one live server."""
        if self.server is None or not self.server.is_alive() or len(self.free) < count:
            self._replace_server(max(self.size, count))
        taken, self.free = self.free[:count], self.free[count:]
        return self.server, taken

    def _replace_server(self, size: int) -> None:
        if self.server is not None:
            self.server.stop()
        self.generation += 1
        directory = self.directory / f"server{self.generation}"
        directory.mkdir()
        storages = []
        for index in range(size):
            name = f"s{index}"
            storages.append(
                StorageSpec(
                    name=name,
                    path=directory / f"{name}.fs",
                    kind=self.kind,
                    blob_dir=directory / f"{name}.blobs"
                    if self.kind == "blob"
                    else None,
                    pack_gc=self.pack_gc,
                    dsn=new_dsn() if self.backend == "relstorage" else None,
                    shared_blobs=self.shared_blobs,
                )
            )
        self.server = ServerProcess(directory, storages, **self.options).start()
        self.free = list(storages)

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        # ZEOPAPA_CONFORMANCE_KEEP=1 keeps the servers' configs, logs and
        # data files for a post-mortem.
        if not os.environ.get("ZEOPAPA_CONFORMANCE_KEEP"):
            shutil.rmtree(self.directory, ignore_errors=True)
