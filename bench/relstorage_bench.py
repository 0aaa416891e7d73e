"""RelStorage on PostgreSQL: the cross-server invalidation lag, and commits
per second through runzeo on FileStorage vs runzeo on RelStorage (1 client).

Starts a throwaway PostgreSQL (tests/support/postgresql.py) and our runzeo
processes on loopback; prints one JSON line per figure.  Not yet measured
here (see docs/scaling.rst): 4 clients, clients on RelStorage directly.

    .venv/bin/python bench/relstorage_bench.py [--rounds 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import zeo  # noqa: E402
from tests.relstorage.conftest import runzeo_config  # noqa: E402
from tests.support import RunzeoProcess, free_port  # noqa: E402
from tests.support.postgresql import start_cluster, stop_cluster  # noqa: E402


def start(directory: Path, text_for_port) -> RunzeoProcess:
    port = free_port()
    server = RunzeoProcess(
        directory / str(port), text_for_port(port), ("127.0.0.1", port)
    )
    return server.start()


def commits_per_second(server: RunzeoProcess, rounds: int) -> float:
    db = zeo.DB(server.address, wait_timeout=60)
    try:
        began = time.perf_counter()
        for value in range(rounds):
            with db.transaction() as connection:
                connection.root()["value"] = value
        return rounds / (time.perf_counter() - began)
    finally:
        db.close()


def lag(first: RunzeoProcess, second: RunzeoProcess, rounds: int) -> list[float]:
    """Seconds from a commit's return through *first* to the watch callback
    of a client of *second*."""
    writer = zeo.DB(first.address, wait_timeout=60)
    listener = zeo.client(second.address, wait_timeout=60)
    condition = threading.Condition()
    seen = [b""]

    def arrived(tid, oids):
        with condition:
            seen[0] = max(seen[0], tid)
            condition.notify_all()

    listener.watch(arrived)
    lags = []
    try:
        for value in range(rounds):
            with writer.transaction() as connection:
                connection.root()["lag"] = value
            tid = writer.storage.lastTransaction()
            committed = time.perf_counter()
            with condition:
                if not condition.wait_for(lambda tid=tid: seen[0] >= tid, 30):
                    raise RuntimeError("no invalidation within 30 s")
            lags.append(time.perf_counter() - committed)
    finally:
        writer.close()
        listener.close()
    return lags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=50)
    arguments = parser.parse_args()
    cluster = start_cluster()
    directory = Path(tempfile.mkdtemp(prefix="relstorage-bench-"))
    servers = []
    try:
        dsn = cluster.dsn(cluster.create_database("bench"))
        filestorage = start(
            directory,
            lambda port: (
                f"<zeo>\n address 127.0.0.1:{port}\n</zeo>\n"
                f"<filestorage 1>\n path {directory}/{port}.fs\n</filestorage>\n"
            ),
        )
        servers.append(filestorage)
        for interval in ("0.1", "0.02"):
            options = {"poll-interval": interval}
            first = start(
                directory,
                lambda port, options=options: runzeo_config(port, dsn, options),
            )
            second = start(
                directory,
                lambda port, options=options: runzeo_config(port, dsn, options),
            )
            servers += [first, second]
            lags = lag(first, second, arguments.rounds)
            print(
                json.dumps(
                    {
                        "figure": "cross-server invalidation lag",
                        "poll_interval": float(interval),
                        "median_ms": round(statistics.median(lags) * 1000, 1),
                        "max_ms": round(max(lags) * 1000, 1),
                        "rounds": arguments.rounds,
                    }
                )
            )
        for name, server in (
            ("zeo on FileStorage", filestorage),
            ("zeo on RelStorage", servers[-2]),
        ):
            print(
                json.dumps(
                    {
                        "figure": "commits/s, 1 client",
                        "server": name,
                        "value": round(commits_per_second(server, arguments.rounds), 1),
                    }
                )
            )
    finally:
        for server in servers:
            server.stop()
        stop_cluster(cluster)


if __name__ == "__main__":
    main()
