"""Fixtures for client tests: real ZEO servers in subprocesses.

``zeo_server`` starts a server on a free 127.0.0.1 port with a FileStorage
in ``tmp_path`` and stops it at the end of the test.  The implementation is
chosen by ``impl``: ``zeo`` (real ZEO 6.2 from ``.peers/zeo``) and
``zeopapa`` (our ``python -m zeo.runzeo``); both take the same ``<zeo>``
configuration.  ``ZEOPAPA_CLIENT_SERVERS=zeo`` (comma-separated) narrows
the list.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port, peer_env, require_peer

SERVER_IMPLEMENTATIONS = os.environ.get("ZEOPAPA_CLIENT_SERVERS", "zeo,zeopapa").split(
    ","
)


def wait_until(condition, timeout=30.0, message="condition"):
    """Poll *condition* until it is true; fail after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


class Server:
    """One server process; ``start()`` again after ``stop()`` reuses the port."""

    def __init__(self, impl, directory, port=None, **options):
        self.impl = impl
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.addr = ("127.0.0.1", self.port)
        self.unix_socket = options.get("unix_socket")
        if self.unix_socket:
            self.addr = str(self.unix_socket)
        self.options = options
        self.data_fs = Path(options.get("data_fs") or self.directory / "Data.fs")
        self.blob_dir = self.directory / "blobs" if options.get("blobs") else None
        self.log = self.directory / "server.log"
        self.process = None

    def write_config(self):
        options = self.options
        zeo_lines = [f"address {self.unix_socket or f'127.0.0.1:{self.port}'}"]
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
        text = (
            "<zeo>\n  "
            + "\n  ".join(zeo_lines)
            + "\n</zeo>\n"
            + f"<filestorage 1>\n  path {self.data_fs}\n{blob}</filestorage>\n"
            + f"<eventlog>\n  level INFO\n  <logfile>\n    path {self.log}\n"
            + "  </logfile>\n</eventlog>\n"
        )
        conf = self.directory / "zeo.conf"
        conf.write_text(text)
        return conf

    def command(self, conf):
        if self.impl == "zeo":
            peer = require_peer("zeo")
            return [sys.executable, str(peer / "bin" / "runzeo"), "-C", str(conf)], (
                peer_env(peer)
            )
        env = dict(os.environ)
        env.pop("ZEO_MSGPACK", None)
        return [sys.executable, "-m", "zeo.runzeo", "-C", str(conf)], env

    def start(self, timeout=60.0):
        conf = self.write_config()
        command, env = self.command(conf)
        self.process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.directory / "server.stderr", "ab"),
        )
        wait_until(self._accepting, timeout, f"{self.impl} server on port {self.port}")
        return self

    def _accepting(self):
        if self.process.poll() is not None:
            raise AssertionError(
                f"server exited with {self.process.returncode}: "
                + (self.directory / "server.stderr").read_text()[-2000:]
            )
        try:
            if self.unix_socket:
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(1)
                    s.connect(self.addr)
                    return True
            with socket.create_connection(self.addr, timeout=1):
                return True
        except OSError:
            return False

    def stop(self):
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)

    def kill(self):
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(15)


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
