"""Start our ZEO server and real ZEO 6.2 side by side for the benchmarks.

Both run as separate processes on a FileStorage in a temporary directory and a
free 127.0.0.1 port, configured by a generated ZConfig file with the same
``<zeo>`` keys, so the only difference between the two columns of a figure is
the implementation.  Real ZEO is installed by ``make peers`` into
``.peers/zeo`` and is only importable through ``PYTHONPATH`` (see
``implementation_environment``), so its ``runzeo`` never shadows ours and its
ZODB never mixes with the venv's.
"""

import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / ".peers"
ZEO_PEER = PEERS / "zeo"
SHOOTOUT_PEER = PEERS / "zodbshootout"

OURS = "ours"
REAL = "zeo"
IMPLEMENTATIONS = (OURS, REAL)

# A server on a loaded 2-core machine can take a few seconds to import ZODB
# and open its storage; a minute means something is really wrong.
SERVER_START_DEADLINE = 60.0


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Call *condition* until it returns something true, and return that.

    Raises ``TimeoutError`` naming *what* after *timeout* seconds; an
    exception from *condition* (a process that exited) ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.02)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return listener.getsockname()[1]


def can_connect(port: int) -> bool:
    """True when something accepts connections on 127.0.0.1:*port*."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def implementation_environment(code: str, *extra_paths: Path) -> dict:
    """Environment for a subprocess that must run implementation ``code``.

    ``code`` is the code actually run (``OURS`` or ``REAL``): real ZEO is put
    first on ``PYTHONPATH`` so that its ZEO, ZODB and persistent are the ones
    imported; ours uses the venv as installed.  ``extra_paths`` go in front
    (zodbshootout).
    """
    environment = dict(os.environ)
    environment.pop("ZEO_MSGPACK", None)
    environment.pop("PYTHONPATH", None)
    paths = [str(path) for path in extra_paths]
    if code == REAL:
        paths.append(str(ZEO_PEER))
    if paths:
        environment["PYTHONPATH"] = os.pathsep.join(paths)
    return environment


def require_real_zeo() -> None:
    """Stop with a message saying how to install real ZEO when it is missing."""
    if not (ZEO_PEER / ".installed").exists():
        sys.exit(f"real ZEO 6.2 is not installed in {ZEO_PEER}: run `make peers`")


def server_configuration(address: tuple, data_path: Path, encoding: str) -> str:
    """The runzeo ZConfig text for one server; the same for both implementations."""
    host, port = address
    msgpack = "true" if encoding == "msgpack" else "false"
    return (
        "<zeo>\n"
        f"  address {host}:{port}\n"
        f"  msgpack {msgpack}\n"
        "</zeo>\n"
        "<filestorage 1>\n"
        f"  path {data_path}\n"
        "</filestorage>\n"
    )


def server_command(code: str, configuration_path: Path) -> list:
    """Command line that starts implementation ``code``'s runzeo on a config."""
    if code == REAL:
        return [
            sys.executable,
            str(ZEO_PEER / "bin" / "runzeo"),
            "-C",
            str(configuration_path),
        ]
    return [sys.executable, "-m", "zeo.runzeo", "-C", str(configuration_path)]


def read_greeting(address: tuple, timeout: float = 2.0) -> bytes:
    """Connect to a ZEO server and return its first frame (``M5`` or ``Z5``)."""
    with socket.create_connection(address, timeout=timeout) as connection:
        received = b""
        while len(received) < 4:
            chunk = connection.recv(4 - len(received))
            if not chunk:
                raise ConnectionError("server closed the connection before greeting")
            received += chunk
        (size,) = struct.unpack(">I", received)
        greeting = b""
        while len(greeting) < size:
            chunk = connection.recv(size - len(greeting))
            if not chunk:
                raise ConnectionError("server closed the connection in its greeting")
            greeting += chunk
        return greeting


@dataclass
class Server:
    """One running server process: which column it serves and which code it runs."""

    column: str
    code: str
    address: tuple
    directory: Path
    process: subprocess.Popen
    log_path: Path
    log_file: object = field(repr=False)

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's log, to explain a failure."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server process has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1]
        user, system = fields.split()[11:13]
        return (int(user) + int(system)) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if the server does not exit within 10 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()


def start_server(column: str, code: str, directory: Path, encoding: str) -> Server:
    """Start a server for ``column`` running ``code`` and wait until it greets.

    Raises ``RuntimeError`` with the end of the server's log when it exits or
    does not greet within ``SERVER_START_DEADLINE``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    address = ("127.0.0.1", free_port())
    configuration_path = directory / "zeo.conf"
    configuration_path.write_text(
        server_configuration(address, directory / "Data.fs", encoding)
    )
    log_path = directory / "server.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed by Server.stop
    process = subprocess.Popen(
        server_command(code, configuration_path),
        env=implementation_environment(code),
        cwd=directory,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    server = Server(column, code, address, directory, process, log_path, log_file)
    what = f"{column} server ({code})"

    def greeting() -> bytes | None:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            return read_greeting(address)
        except OSError:
            return None

    try:
        greeted = wait_until(greeting, SERVER_START_DEADLINE, f"{what} greeting")
    except (RuntimeError, TimeoutError) as error:
        server.stop()
        raise RuntimeError(f"{error}:\n{server.log_tail()}") from None
    expected = b"M5" if encoding == "msgpack" else b"Z5"
    if greeted != expected:
        server.stop()
        raise RuntimeError(f"{what} greeted {greeted!r}, expected {expected!r}")
    return server


def start_our_runzeo(directory: Path, **popen_options) -> tuple[subprocess.Popen, str]:
    """Our runzeo on ``Data.fs`` in *directory* and a port it picks itself;
    return the process and its address (``host:port``) once it listens.

    Exits (``SystemExit``) when runzeo does not start.
    """
    address_file = directory / "address"
    process = subprocess.Popen(
        [sys.executable, "-m", "zeo.runzeo", "-a", "127.0.0.1:0"]
        + ["-f", str(directory / "Data.fs"), "--address-file", str(address_file)],
        env=implementation_environment(OURS, ROOT / "src"),
        **popen_options,
    )

    def listening() -> bool:  # runzeo announces no event but this file
        if process.poll() is not None:
            raise RuntimeError(f"runzeo exited with {process.returncode}")
        return address_file.exists()

    try:
        wait_until(listening, SERVER_START_DEADLINE, "runzeo listening")
    except (RuntimeError, TimeoutError) as error:
        process.kill()
        process.wait()
        raise SystemExit(f"runzeo did not start: {error}") from None
    return process, address_file.read_text().strip()
