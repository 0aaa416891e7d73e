"""Real papa kernels (ours, or papa 1.0.6's) as processes on free ports or
Unix sockets, and what it takes to leave no child of theirs behind."""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from .network import Address, can_connect, family_of, free_port
from .peers import PYTHON, our_env, peer_env
from .polling import wait_until

#: A kernel imports little: on a loaded 2-core machine it listens in well
#: under this, and its children die as fast.
KERNEL_TIMEOUT = 20.0


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            stat = stat_file.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] != b"Z"


def gone(pid: int) -> bool:
    return not pid_alive(pid)


def kill_all(pids: Sequence[int]) -> None:
    """SIGKILL every process (and its group, which each child leads)."""
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


class RawSession:
    """A telnet-like connection: send lines, read replies as bytes."""

    def __init__(self, address: Address, timeout: float = KERNEL_TIMEOUT) -> None:
        self.sock = socket.socket(family_of(address))
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
    """A kernel run as ``python -m papa`` (ours) or papa 1.0.6's (*peer*),
    on a free TCP port of 127.0.0.1 or (*unix*) a socket in *folder*."""

    def __init__(
        self,
        folder: Path,
        unix: bool = False,
        state_dir: Path | None = None,
        peer: Path | None = None,
        extra: Sequence[str] = (),
        debug: bool = True,
        timeout: float = KERNEL_TIMEOUT,
    ) -> None:
        self.tmp_path = folder
        self.peer = peer
        self.state_dir = state_dir
        self.extra = list(extra)
        self.debug = debug
        self.timeout = timeout
        self.port_or_path: int | str
        self.address: Address
        if unix:
            self.address = str(folder / f"papa-{free_port()}.sock")
            self.port_or_path = self.address
        else:
            self.port_or_path = free_port()
            self.address = ("127.0.0.1", self.port_or_path)
        self.process: subprocess.Popen[bytes] | None = None
        self.log = folder / f"kernel-{os.getpid()}-{free_port()}.log"

    def command_line(self) -> list[str]:
        if isinstance(self.port_or_path, str):
            where = ["-u", self.port_or_path]
        else:
            where = ["-p", str(self.port_or_path)]
        if self.peer is not None:
            run_peer = "import sys; from papa.server import main; sys.exit(main())"
            return [PYTHON, "-c", run_peer, *where]
        # "-m papa -p PORT" first: tests find the kernel by that command line.
        command = [PYTHON, "-m", "papa", *where, *self.extra]
        if self.debug:
            command.append("-d")
        if self.state_dir:
            command += ["--state-dir", str(self.state_dir)]
        return command

    def env(self) -> dict[str, str]:
        return our_env() if self.peer is None else peer_env(self.peer)

    def start(self) -> KernelProcess:
        """Start the kernel; return once it accepts connections."""
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self.command_line(),
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=str(self.tmp_path),
            )
        wait_until(self._ready, self.timeout, message=f"kernel on {self.address}")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
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

    def stop(self, kill_children: bool = True) -> None:
        """Kill the kernel's children (if asked), then the kernel."""
        pids = []
        running = self.process is not None and self.process.poll() is None
        if running and kill_children:
            pids = self.listed_pids()
            kill_all(pids)
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(self.timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in pids:
            wait_until(
                functools.partial(gone, pid), self.timeout, message=f"child {pid} gone"
            )

    def kill(self) -> None:
        """SIGKILL the kernel alone (its children survive, as in papa)."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()
