"""Fixtures for the server tests: our runzeo as a real process, real ZEO
clients in subprocesses, and a raw-socket client for protocol-level tests."""

import functools
import json
import socket
import struct
import subprocess
import textwrap

import pytest

from tests.conftest import PYTHON, free_port, peer_env
from tests.support import RunzeoProcess
from tests.support import wait_until as _wait_until
from zeo.protocol import FrameDecoder, decoder, encoder, frame

# Generous: a cold interpreter importing ZODB on a loaded 2-core machine.
START_TIMEOUT = 60
CALL_TIMEOUT = 30

#: ``wait_until(condition, timeout=START_TIMEOUT, message=...)``.
wait_until = functools.partial(_wait_until, timeout=START_TIMEOUT)

#: One runzeo process started by the ``start_server`` fixture.
RunningServer = RunzeoProcess


def server_config(
    address,
    data_path=None,
    blob_dir=None,
    log_path=None,
    zeo_options=None,
    storage_section=None,
    ssl_section=None,
):
    """The text of a runzeo configuration."""
    lines = ["<zeo>", f"  address {address}"]
    for key, value in (zeo_options or {}).items():
        lines.append(f"  {key} {value}")
    if ssl_section:
        lines.append(ssl_section)
    lines.append("</zeo>")
    if storage_section is None:
        if data_path is None:
            storage_section = "<mappingstorage 1>\n</mappingstorage>"
        else:
            storage_section = f"<filestorage 1>\n  path {data_path}\n</filestorage>"
    if blob_dir is not None:
        storage_section = (
            f"<blobstorage 1>\n  blob-dir {blob_dir}\n{storage_section}\n</blobstorage>"
        )
    lines.append(storage_section)
    if log_path is not None:
        lines.extend(
            [
                "<eventlog>",
                "  level DEBUG",
                "  <logfile>",
                f"    path {log_path}",
                "    format %(asctime)s %(levelname)s %(name)s %(message)s",
                "  </logfile>",
                "</eventlog>",
            ]
        )
    return "\n".join(lines) + "\n"


@pytest.fixture
def start_server(tmp_path):
    """Start our runzeo on a free loopback port; every one is stopped after."""
    started = []
    counter = iter(range(1, 1000))

    def start(
        msgpack=True,
        data_path="default",
        blob_dir=None,
        zeo_options=None,
        port=None,
        extra_args=(),
        name=None,
        ssl_section=None,
    ):
        name = name or f"server{next(counter)}"
        directory = tmp_path / name
        directory.mkdir()
        if data_path == "default":
            data_path = directory / "Data.fs"
        log_path = directory / "zeo.log"
        options = {} if msgpack is None else {"msgpack": str(msgpack).lower()}
        options.update(zeo_options or {})
        port = port or free_port()
        server = RunningServer(
            directory,
            server_config(
                f"127.0.0.1:{port}",
                data_path,
                blob_dir,
                log_path,
                options,
                ssl_section=ssl_section,
            ),
            ("127.0.0.1", port),
            log_path=log_path,
            data_path=data_path,
            extra_args=extra_args,
            output_name="output.txt",
            start_timeout=START_TIMEOUT,
            stop_timeout=START_TIMEOUT,
        )
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def run_peer_script(zeo_peer, code, timeout=120, cwd=None):
    """Run *code* under real ZEO 6.2 in a subprocess; return its JSON result.

    The script reports by printing one JSON line starting with ``RESULT ``.
    """
    process = subprocess.run(
        [PYTHON, "-c", textwrap.dedent(code)],
        env=peer_env(zeo_peer),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )
    results = [
        line[len("RESULT ") :]
        for line in process.stdout.splitlines()
        if line.startswith("RESULT ")
    ]
    if process.returncode != 0 or not results:
        pytest.fail(
            f"peer script failed with {process.returncode}:\n{process.stdout}\n"
            f"{process.stderr}"
        )
    return json.loads(results[-1])


class RawClient:
    """A client speaking the wire protocol by hand, for protocol tests."""

    def __init__(self, address, timeout=CALL_TIMEOUT):
        self.socket = socket.create_connection(address, timeout=timeout)
        self.frames = FrameDecoder()
        self.pending = []
        self.announced = self.read_frame()
        self.protocol = None
        self.next_msgid = 1
        self.received = []

    def handshake(self, protocol=None):
        self.protocol = protocol or self.announced
        self.send_raw(frame(self.protocol))
        self.encode = encoder(self.protocol)
        self.decode = decoder(self.protocol)

    def send_raw(self, data):
        self.socket.sendall(data)

    def read_frame(self):
        while not self.pending:
            data = self.socket.recv(65536)
            if not data:
                raise EOFError("server closed the connection")
            self.pending.extend(self.frames.feed(data))
        return self.pending.pop(0)

    def read_message(self):
        return self.decode(self.read_frame())

    def call(self, name, *args):
        """A synchronous call; returns the result or raises ServerError."""
        msgid = self.next_msgid
        self.next_msgid += 1
        self.send_raw(frame(self.encode(msgid, False, name, args)))
        while True:
            message = self.read_message()
            reply_id, flag, reply_name, value = message
            if reply_name == ".reply" and reply_id == msgid:
                if flag == 2:
                    raise ServerError(value)
                return value
            self.received.append(message)  # callbacks, other replies

    def call_one_way(self, name, *args):
        self.send_raw(frame(self.encode(0, True, name, args)))

    def is_closed_by_server(self, timeout=CALL_TIMEOUT):
        """True when the server closes the connection within *timeout*."""
        self.socket.settimeout(timeout)
        try:
            while True:
                data = self.socket.recv(65536)
                if not data:
                    return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def close(self):
        self.socket.close()


class ServerError(Exception):
    """An error reply: ``args[0]`` is ``(class name, payload)``."""


@pytest.fixture
def raw_clients():
    """Open RawClients with ``raw_clients(address)``; all closed after."""
    clients = []

    def connect(address):
        client = RawClient(address)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


def ruok(address, timeout=CALL_TIMEOUT):
    """Send the zeo-nagios probe; return the decoded JSON status."""
    with socket.create_connection(address, timeout=timeout) as connection:
        connection.sendall(b"\x00\x00\x00\x04ruok")
        data = b""
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                break
            data += chunk
    # Two frames: the announcement, then the JSON status.
    (first,) = struct.unpack(">I", data[:4])
    rest = data[4 + first :]
    (second,) = struct.unpack(">I", rest[:4])
    return data[4 : 4 + first], json.loads(rest[4 : 4 + second])
