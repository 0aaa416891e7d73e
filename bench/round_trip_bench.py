"""Where the microseconds of one round trip go, ours and real ZEO 6.2.

Issue 14 asks where each microsecond of a ping and of a cold load goes, on
both sides.  Each row is a median round trip (µs) over ``--count`` calls,
measured in one run, so the differences between rows split the time:

- ``loopback floor``: a blocking Python client and a blocking Python echo
  server (a process of its own) passing the ping's frames: two
  ``send``/``recv`` pairs and two process wake-ups, nothing else;
- ``raw client → ours`` / ``→ zeo``: the same blocking client (our
  sans-I/O :class:`~zeo.protocol.client.ClientSession` on a plain socket,
  no I/O thread) calling ``ping``, then ``loadBefore`` of one object, on
  each runzeo: minus the floor, the server's own time;
- ``full client``: each implementation's ``ClientStorage.ping()`` on its
  own server (bench/_worker.py, as zeo_bench's ``ping``): minus the raw
  client's figure, the client's own time (its threads and wake-ups).

Both servers on FileStorage, ``--encoding`` msgpack by default.  Prints one
JSON line per row and a table on stderr.

    .venv/bin/python bench/round_trip_bench.py [--count 5000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "src"))

from _servers import OURS, REAL, free_port, require_real_zeo, start_server  # noqa: E402
from zeo_bench import run_workers, summarise, worker_spec  # noqa: E402

from zeo.protocol.client import Announced, ClientSession  # noqa: E402
from zeo.protocol.framing import FrameDecoder, frame  # noqa: E402


def frames(connection: socket.socket, decoder: FrameDecoder):
    """Payloads as *connection* brings them, through *decoder*."""
    while True:
        chunk = connection.recv(65536)
        if not chunk:
            raise ConnectionError("the other side closed the connection")
        yield from decoder.feed(chunk)


def echo_server(port: int) -> None:
    """``--echo``: send every frame back as it came, one connection."""
    with socket.create_server(("127.0.0.1", port)) as listener:
        print("ready", flush=True)
        connection, _ = listener.accept()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for payload in frames(connection, FrameDecoder()):
                connection.sendall(frame(payload))
        except ConnectionError:
            pass


class Slot:
    """A waiter for :meth:`ClientSession.register` (no thread to wake)."""

    def set_result(self, result):
        self.result = result

    def set_exception(self, exception):
        raise exception


class RawClient:
    """Our ClientSession on a blocking socket: calls, one at a time."""

    def __init__(self, address: tuple) -> None:
        self.connection = socket.create_connection(address)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.session = ClientSession(address)
        announced = self._until(lambda: False)
        self.connection.sendall(self.session.answer(announced.protocol))
        self.session.operational = True
        self.call("register", "1", False)

    def _until(self, done):
        """Feed the session what the server sends until *done()*; returns
        the server's announcement if it comes first."""
        while not done():
            chunk = self.connection.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            for event in self.session.receive(chunk):
                if type(event) is Announced:
                    return event
                # callbacks (invalidations): none while we only read
        return None

    def call(self, name: str, *args):
        msgid = next(self.session.msgids)
        slot = Slot()
        self.session.register(msgid, name, slot, None)
        self.connection.sendall(self.session.call(msgid, name, args))
        self._until(lambda: hasattr(slot, "result"))
        return slot.result

    def close(self) -> None:
        self.connection.close()


def timed(function, count: int) -> float:
    """Median µs of *count* calls of *function* (after 200 warm-up calls)."""
    for _ in range(200):
        function()
    clock = time.perf_counter_ns
    samples = []
    for _ in range(count):
        began = clock()
        function()
        samples.append(clock() - began)
    return statistics.median(samples) / 1000


def floor(count: int) -> float:
    port = free_port()
    echo = subprocess.Popen(
        [sys.executable, __file__, "--echo", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert echo.stdout.readline().strip() == "ready"
        connection = socket.create_connection(("127.0.0.1", port))
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        session = ClientSession("echo")
        session.answer(b"M5")
        ping = session.call(1, "ping", ())
        replies = frames(connection, FrameDecoder())

        def once():
            connection.sendall(ping)
            next(replies)

        figure = timed(once, count)
        connection.close()
        return figure
    finally:
        echo.wait(10)


def raw(server, count: int) -> dict:
    client = RawClient(server.address)
    try:
        root = client.call("loadBefore", b"\0" * 8, b"\xff" * 8)
        assert root is not None, "the root object is not there"
        return {
            "ping": timed(lambda: client.call("ping"), count),
            "loadBefore": timed(
                lambda: client.call("loadBefore", b"\0" * 8, b"\xff" * 8), count
            ),
        }
    finally:
        client.close()


def full(code: str, server, count: int, workdir: Path) -> float:
    sizes = {"transactions": 0, "passes": 0, "pings": count}
    spec = worker_spec(code, server, "ping", sizes, workdir / "oids")
    reports, _cpu = run_workers(code, server, spec, 1, workdir)
    return summarise("ping", reports)["ping_median"]


def make_root(server) -> None:
    """A root object to load (a new FileStorage has none until a client
    opens a DB on it)."""
    import zeo

    zeo.DB(server.address, wait_timeout=60).close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="calls per figure")
    parser.add_argument("--runs", type=int, default=3, help="runs (medians)")
    parser.add_argument("--encoding", choices=("msgpack", "pickle"), default="msgpack")
    parser.add_argument("--echo", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.echo:
        echo_server(options.echo)
        return
    require_real_zeo()
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        servers = {
            code: start_server(code, code, workdir / code, options.encoding)
            for code in (OURS, REAL)
        }
        try:
            for server in servers.values():
                make_root(server)
            for _run in range(options.runs):
                rows.setdefault("loopback floor (echo)", []).append(
                    floor(options.count)
                )
                for code, server in servers.items():
                    for call, figure in raw(server, options.count).items():
                        rows.setdefault(f"raw client, {call} → {code}", []).append(
                            figure
                        )
                    rows.setdefault(f"full client, ping → {code}", []).append(
                        full(code, server, options.count, workdir)
                    )
        finally:
            for server in servers.values():
                server.stop()
    medians = {
        row: round(statistics.median(samples), 1) for row, samples in rows.items()
    }
    for row, median in medians.items():
        print(
            json.dumps(
                {
                    "figure": row,
                    "median_us": median,
                    "runs": [round(sample, 1) for sample in rows[row]],
                    "count": options.count,
                    "encoding": options.encoding,
                }
            ),
            flush=True,
        )
    print(
        f"\n{'µs per round trip (median of runs)':<40}{'ours':>8}{'zeo':>8}",
        file=sys.stderr,
    )
    base = medians["loopback floor (echo)"]
    print(f"{'loopback floor (echo)':<40}{base:>8}{base:>8}", file=sys.stderr)
    for label, key in (
        ("raw client, ping", "raw client, ping → {}"),
        ("raw client, loadBefore", "raw client, loadBefore → {}"),
        ("full client, ping", "full client, ping → {}"),
    ):
        cells = "".join(f"{medians[key.format(code)]:>8}" for code in (OURS, REAL))
        print(f"{label:<40}{cells}", file=sys.stderr)


if __name__ == "__main__":
    main()
