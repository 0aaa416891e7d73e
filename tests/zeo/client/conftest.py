"""Fixtures for client tests: real ZEO servers in subprocesses.

``zeo_server`` starts a server on a free 127.0.0.1 port with a FileStorage
in ``tmp_path`` and stops it at the end of the test.  The implementation is
chosen by ``impl``: ``zeo`` (real ZEO 6.2 from ``.peers/zeo``) and
``zeopapa`` (our ``python -m zeo.runzeo``); both take the same ``<zeo>``
configuration.  ``ZEOPAPA_CLIENT_SERVERS=zeo`` (comma-separated) narrows
the list.
"""

import functools
import os
from pathlib import Path

import pytest

from tests.conftest import free_port, require_peer
from tests.support import RunzeoProcess
from tests.support import wait_until as _wait_until

SERVER_IMPLEMENTATIONS = os.environ.get("ZEOPAPA_CLIENT_SERVERS", "zeo,zeopapa").split(
    ","
)

#: ``wait_until(condition, timeout=30.0, message=...)``.
wait_until = functools.partial(_wait_until, timeout=30.0)

#: Generous: a cold interpreter importing ZODB on a loaded 2-core machine.
START_TIMEOUT = 60.0
#: A server that ignores SIGTERM that long is killed: the tests that stop
#: one want it gone, not cleanly closed.
STOP_TIMEOUT = 5.0


class Server(RunzeoProcess):
    """One server process; ``start()`` again after ``stop()`` reuses the port."""

    def __init__(self, impl, directory, port=None, **options):
        self.impl = impl
        directory = Path(directory)
        self.port_number = port or free_port()
        self.unix_socket = options.get("unix_socket")
        address = (
            str(self.unix_socket)
            if self.unix_socket
            else ("127.0.0.1", self.port_number)
        )
        self.options = options
        self.data_fs = Path(options.get("data_fs") or directory / "Data.fs")
        self.blob_dir = directory / "blobs" if options.get("blobs") else None
        self.log = directory / "server.log"
        super().__init__(
            directory,
            self.config(),
            address,
            peer=require_peer("zeo") if impl == "zeo" else None,
            log_path=self.log,
            data_path=self.data_fs,
            output_name="server.stderr",
            start_timeout=START_TIMEOUT,
            stop_timeout=STOP_TIMEOUT,
        )
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def port(self):
        return self.port_number

    @property
    def addr(self):
        return self.address

    def config(self):
        options = self.options
        zeo_lines = [f"address {self.unix_socket or f'127.0.0.1:{self.port_number}'}"]
        zeo_lines.append(f"msgpack {'true' if options.get('msgpack') else 'false'}")
        if options.get("transaction_timeout"):
            zeo_lines.append(f"transaction-timeout {options['transaction_timeout']}")
        if options.get("client_conflict_resolution"):
            zeo_lines.append("client-conflict-resolution true")
        if options.get("read_only"):
            zeo_lines.append("read-only true")
        if options.get("invalidation_queue_size"):
            zeo_lines.append(
                f"invalidation-queue-size {options['invalidation_queue_size']}"
            )
        if options.get("ssl"):
            certificate, key, authenticate = options["ssl"]
            zeo_lines.append(
                f"<ssl>\n    certificate {certificate}\n    key {key}\n"
                f"    authenticate {authenticate}\n  </ssl>"
            )
        blob = f"  blob-dir {self.blob_dir}\n" if self.blob_dir else ""
        for line in options.get("storage_lines", ()):
            blob += f"  {line}\n"
        return (
            "<zeo>\n  "
            + "\n  ".join(zeo_lines)
            + "\n</zeo>\n"
            + f"<filestorage 1>\n  path {self.data_fs}\n{blob}</filestorage>\n"
            + f"<eventlog>\n  level INFO\n  <logfile>\n    path {self.log}\n"
            + "  </logfile>\n</eventlog>\n"
        )

    def start(self, timeout=START_TIMEOUT):
        self.start_timeout = timeout
        return super().start()


@pytest.fixture(params=SERVER_IMPLEMENTATIONS)
def impl(request):
    return request.param


@pytest.fixture
def start_server(impl, tmp_path):
    """``start_server(**options)`` -> a running :class:`Server` (stopped at the end)."""
    servers = []

    def start(name="server", **options):
        server = Server(impl, tmp_path / name, **options)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(params=[True, False], ids=["msgpack", "pickle"])
def msgpack(request):
    return request.param


@pytest.fixture
def server(start_server, msgpack):
    """A running server in each encoding."""
    return start_server(msgpack=msgpack)


@pytest.fixture
def client_factory():
    """``client_factory(addr, **kw)`` -> ClientStorage closed at the end."""
    from zeo.clientstorage import ClientStorage

    storages = []

    def make(addr, **kw):
        kw.setdefault("wait_timeout", 30)
        storage = ClientStorage(addr, **kw)
        storages.append(storage)
        return storage

    yield make
    for storage in storages:
        storage.close()
