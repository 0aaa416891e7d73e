"""Fixtures for papa: real kernels on free ports and temp Unix sockets.

Every kernel started here is stopped in the fixture's finaliser, and every
process it reported is killed and checked gone, so no test leaks children.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, peer_env, require_peer

DEADLINE_SECONDS = 20
SRC = ROOT / "src"


def wait_for(condition, timeout=DEADLINE_SECONDS, interval=0.01, message="condition"):
    """Poll ``condition()`` until it is truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {message}")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            stat = stat_file.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] != b"Z"


def can_connect(address) -> bool:
    if isinstance(address, int):
        address = ("127.0.0.1", address)
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family) as probe:
        try:
            probe.connect(address)
        except OSError:
            return False
    return True


class RawSession:
    """A telnet-like connection: send lines, read replies as bytes."""

    def __init__(self, address, timeout=DEADLINE_SECONDS):
        family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        self.sock = socket.socket(family)
        self.sock.settimeout(timeout)
        self.sock.connect(address)
        self.buffer = b""
        self.banner = self.read_until(b"> ")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_until(self, end: bytes) -> bytes:
        while not self.buffer.endswith(end) or not self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.buffer)
            self.buffer += chunk
        data, self.buffer = self.buffer, b""
        return data

    def command(self, line: str | bytes) -> bytes:
        """Send one line; return the reply up to and including the prompt."""
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\n")
        return self.read_until(b"\n> ") if line.strip() else self.read_until(b"> ")

    def read_to_eof(self) -> bytes:
        data = self.buffer
        while chunk := self.sock.recv(65536):
            data += chunk
        self.buffer = b""
        return data

    def close(self) -> None:
        self.sock.close()


class KernelProcess:
    """A kernel run as ``python -m papa`` (ours) or papa 1.0.6's (peer)."""

    def __init__(self, tmp_path: Path, unix=False, state_dir=None, peer=None, extra=()):
        self.tmp_path = tmp_path
        self.peer = peer
        self.state_dir = state_dir
        self.extra = list(extra)
        if unix:
            self.address = str(tmp_path / f"papa-{free_port()}.sock")
            self.port_or_path = self.address
        else:
            self.port_or_path = free_port()
            self.address = ("127.0.0.1", self.port_or_path)
        self.process: subprocess.Popen | None = None
        self.log = tmp_path / f"kernel-{os.getpid()}-{free_port()}.log"

    def command_line(self) -> list[str]:
        where = (
            ["-u", self.port_or_path]
            if isinstance(self.port_or_path, str)
            else ["-p", str(self.port_or_path)]
        )
        if self.peer is not None:
            return [
                sys.executable,
                "-c",
                "import sys; from papa.server import main; sys.exit(main())",
                *where,
            ]
        command = [sys.executable, "-m", "papa", "-d", *where, *self.extra]
        if self.state_dir:
            command += ["--state-dir", str(self.state_dir)]
        return command

    def env(self) -> dict:
        if self.peer is not None:
            return peer_env(self.peer)
        env = dict(os.environ)
        env["PYTHONPATH"] = str(SRC)
        return env

    def start(self) -> KernelProcess:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self.command_line(),
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=str(self.tmp_path),
            )
        wait_for(self._ready, message=f"kernel on {self.address}")
        return self

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(
                f"kernel exited with {self.process.returncode}: {self.log.read_text()}"
            )
        return can_connect(self.address)

    def raw(self) -> RawSession:
        return RawSession(self.address)

    def listed_pids(self) -> list[int]:
        """Pids of every process the kernel lists (running or not)."""
        if not can_connect(self.address):
            return []
        session = self.raw()
        try:
            reply = session.command("list processes").decode()
        finally:
            session.close()
        pids = []
        for line in reply.splitlines():
            for word in line.split(" "):
                if word.startswith("pid="):
                    pids.append(int(word[4:]))
        return pids

    def stop(self, kill_children=True) -> None:
        """Kill the kernel's children (if asked), then the kernel."""
        pids = []
        if self.process is not None and self.process.poll() is None and kill_children:
            pids = self.listed_pids()
            kill_all(pids)
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(DEADLINE_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in pids:
            wait_for(lambda pid=pid: not pid_alive(pid), message=f"child {pid} gone")

    def kill(self) -> None:
        """SIGKILL the kernel alone (its children survive, as in papa)."""
        self.process.kill()
        self.process.wait()


def kill_all(pids) -> None:
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)  # each child leads its own session
        except OSError:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


@pytest.fixture
def papa_peer() -> Path:
    """Real papa 1.0.6, importable only in subprocesses run with peer_env()."""
    return require_peer("papa")


@pytest.fixture
def kernel_factory(tmp_path):
    """Start kernels; all are stopped, and their children killed, at the end."""
    started: list[KernelProcess] = []

    def start(**options) -> KernelProcess:
        kernel = KernelProcess(tmp_path, **options).start()
        started.append(kernel)
        return kernel

    yield start
    for kernel in started:
        kernel.stop()


@pytest.fixture
def kernel(kernel_factory) -> KernelProcess:
    """Our kernel on a free TCP port of 127.0.0.1."""
    return kernel_factory()


@pytest.fixture
def unix_kernel(kernel_factory) -> KernelProcess:
    """Our kernel on a Unix socket in the test's temp folder."""
    return kernel_factory(unix=True)


@pytest.fixture
def client(kernel):
    """Our client library connected to our kernel."""
    import papa

    connection = papa.Papa(kernel.port_or_path, connection_timeout=DEADLINE_SECONDS)
    yield connection
    connection.close()


PYTHON = sys.executable
