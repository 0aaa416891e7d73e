"""RelStorage on PostgreSQL: the cross-server invalidation lag, and commits
per second with 1 and 4 clients through runzeo on FileStorage, through
runzeo on RelStorage, and opened on RelStorage directly (no runzeo).

Starts a throwaway PostgreSQL (tests/support/postgresql.py) and our runzeo
processes on loopback; each client is a process of its own (so that the
clients on RelStorage directly do not share one GIL) committing to an
object of its own (no conflicts).  Prints one JSON line per figure, the
median of ``--runs`` runs.

    .venv/bin/python bench/relstorage_bench.py [--rounds 50] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import zeo  # noqa: E402
from dispatch.direct import POLL_INTERVAL, CommitPoller  # noqa: E402
from tests.relstorage.conftest import runzeo_config  # noqa: E402
from tests.support import RunzeoProcess, free_port  # noqa: E402
from tests.support.postgresql import (  # noqa: E402
    relstorage_config,
    start_cluster,
    stop_cluster,
)


def start(directory: Path, text_for_port) -> RunzeoProcess:
    port = free_port()
    server = RunzeoProcess(
        directory / str(port), text_for_port(port), ("127.0.0.1", port)
    )
    return server.start()


def open_db(target):
    """A DB on a runzeo address (a tuple) or on RelStorage at a dsn (text)."""
    if isinstance(target, tuple):
        return zeo.DB(target, wait_timeout=60)
    import ZODB.config

    return ZODB.config.databaseFromString(
        "%import relstorage\n<zodb>\n" + relstorage_config(target) + "</zodb>\n"
    )


class direct_listener:
    """A RelStorage opened directly, its ``watch()`` from dispatch.direct."""

    def __init__(self, dsn: str) -> None:
        self.db = open_db(dsn)
        self.poller = CommitPoller(self.db.storage, POLL_INTERVAL)
        self.watch = self.poller.watch

    def close(self) -> None:
        self.poller.close()
        self.db.close()


def client(target, index: int, rounds: int, ready, go, results) -> None:
    """One client process: commit *rounds* times to its own object."""
    db = open_db(target)
    try:
        ready.put(index)
        go.wait()
        began = time.perf_counter()
        for value in range(rounds):
            with db.transaction() as connection:
                connection.root()[f"client{index}"]["value"] = value
        results.put(time.perf_counter() - began)
    finally:
        db.close()


def commits_per_second(target, clients: int, rounds: int) -> float:
    """All clients' commits over the time of the slowest."""
    from persistent.mapping import PersistentMapping

    db = open_db(target)
    try:
        with db.transaction() as connection:
            for index in range(clients):
                connection.root().setdefault(f"client{index}", PersistentMapping())
    finally:
        db.close()
    context = multiprocessing.get_context("spawn")
    ready, results, go = context.Queue(), context.Queue(), context.Event()
    processes = [
        context.Process(target=client, args=(target, i, rounds, ready, go, results))
        for i in range(clients)
    ]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=120)
    go.set()
    elapsed = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join(60)
    return clients * rounds / max(elapsed)


def lag(writer, listener, rounds: int) -> list[float]:
    """Seconds from a commit's return through the DB *writer* to the watch
    callback of *listener* (a storage with ``watch()``; both are closed).
    A random pause before each commit: commits right after the last
    callback would be in phase with the poll timer."""
    condition = threading.Condition()
    seen = [b""]
    interval = random.Random(15)

    def arrived(tid, oids):
        with condition:
            seen[0] = max(seen[0], tid)
            condition.notify_all()

    listener.watch(arrived)
    lags = []
    try:
        for value in range(rounds):
            time.sleep(interval.uniform(0, 0.1))
            with writer.transaction() as connection:
                root = connection.root()
                root["lag"] = value
            # The root's new serial: a RelStorage DB's storage does not
            # commit itself (its connections' instances do).
            tid = root._p_serial
            committed = time.perf_counter()
            with condition:
                if not condition.wait_for(lambda tid=tid: seen[0] >= tid, 30):
                    raise RuntimeError("no invalidation within 30 s")
            lags.append(time.perf_counter() - committed)
    finally:
        writer.close()
        listener.close()
    return lags


def report(**figure) -> None:
    print(json.dumps(figure), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4])
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
        pairs = {}
        for interval in ("0.1", "0.02"):
            options = {"poll-interval": interval}
            pair = [
                start(
                    directory,
                    lambda port, options=options: runzeo_config(port, dsn, options),
                )
                for _ in range(2)
            ]
            servers += pair
            pairs[interval] = pair
            lags = lag(
                zeo.DB(pair[0].address, wait_timeout=60),
                zeo.client(pair[1].address, wait_timeout=60),
                arguments.rounds,
            )
            report(
                figure="cross-server invalidation lag",
                poll_interval=float(interval),
                median_ms=round(statistics.median(lags) * 1000, 1),
                max_ms=round(max(lags) * 1000, 1),
                rounds=arguments.rounds,
            )
        lags = lag(open_db(dsn), direct_listener(dsn), arguments.rounds)
        report(
            figure="dispatch.direct watch lag (RelStorage directly)",
            poll_interval=POLL_INTERVAL,
            median_ms=round(statistics.median(lags) * 1000, 1),
            max_ms=round(max(lags) * 1000, 1),
            rounds=arguments.rounds,
        )
        targets = (
            ("zeo on FileStorage", filestorage.address),
            ("zeo on RelStorage", pairs["0.1"][0].address),
            ("RelStorage directly", dsn),
        )
        for clients in arguments.clients:
            for name, target in targets:
                runs = [
                    commits_per_second(target, clients, arguments.rounds)
                    for _ in range(arguments.runs)
                ]
                report(
                    figure=f"commits/s, {clients} client(s)",
                    server=name,
                    median=round(statistics.median(runs), 1),
                    runs=[round(run, 1) for run in runs],
                    rounds=arguments.rounds,
                )
    finally:
        for server in servers:
            server.stop()
        stop_cluster(cluster)


if __name__ == "__main__":
    main()
