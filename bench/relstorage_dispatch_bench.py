"""dispatch transitions/s on RelStorage: one runzeo on FileStorage (the
reference) against one runzeo on RelStorage, two runzeo over one
PostgreSQL (consumers split between them) and consumers opening RelStorage
directly (``zodb:PATH``, dispatch.direct), with 1, 4 and 8 consumers.

bench/dispatch_bench.py's harness (consumer processes, a chain recipe on
one queue, the clock from the commit that starts a run to the one that
ends it) on bench/relstorage_bench.py's set-up (a throwaway PostgreSQL,
tests/support/postgresql.py, and our runzeo processes on loopback).  Each
setup has a database of its own.  A round runs every consumer count on
every setup in turn, so that all meet the same noise; prints one JSON line
per figure (the median of ``--rounds``, with the ratio to the reference)
and a table on stderr.  CPU per transition counts the consumers, the
runzeo processes and PostgreSQL (its postmaster with the backends it has
reaped and those still running; Linux).

    .venv/bin/python bench/relstorage_dispatch_bench.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from dispatch_bench import process_cpu, server_cpu, transitions  # noqa: E402
from relstorage_bench import start  # noqa: E402

from tests.relstorage.conftest import runzeo_config  # noqa: E402
from tests.support.postgresql import (  # noqa: E402
    relstorage_config,
    start_cluster,
    stop_cluster,
)

REFERENCE = "one runzeo on FileStorage"


def postgresql_cpu(cluster) -> float:
    """CPU seconds PostgreSQL used so far: the postmaster, the backends it
    reaped, and its running children."""
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    total = process_cpu(postmaster, children=True)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
            total += process_cpu(int(entry.name))
    return total


def runzeo_cpu(server):
    return lambda: server_cpu(server.process)


def setups(cluster, directory: Path) -> tuple[dict, list]:
    """``{name: (targets, CPU sources)}`` and the runzeo processes started."""
    servers = []

    def runzeo(text_for_port):
        server = start(directory, text_for_port)
        servers.append(server)
        return server

    filestorage = runzeo(
        lambda port: (
            f"<zeo>\n address 127.0.0.1:{port}\n</zeo>\n"
            f"<filestorage 1>\n path {directory}/{port}.fs\n</filestorage>\n"
        )
    )
    one_dsn = cluster.dsn(cluster.create_database("one"))
    one = runzeo(lambda port: runzeo_config(port, one_dsn))
    two_dsn = cluster.dsn(cluster.create_database("two"))
    two = [runzeo(lambda port: runzeo_config(port, two_dsn)) for _ in range(2)]
    direct_dsn = cluster.dsn(cluster.create_database("direct"))
    zodb_file = directory / "direct.conf"
    zodb_file.write_text(
        "%import relstorage\n<zodb>\n" + relstorage_config(direct_dsn) + "</zodb>\n"
    )

    def pg():
        return postgresql_cpu(cluster)

    table = {
        REFERENCE: ([filestorage.address], [runzeo_cpu(filestorage)]),
        "one runzeo on RelStorage": ([one.address], [runzeo_cpu(one), pg]),
        "two runzeo over one PostgreSQL": (
            [server.address for server in two],
            [runzeo_cpu(server) for server in two] + [pg],
        ),
        "RelStorage directly": ([f"zodb:{zodb_file}"], [pg]),
    }
    return table, servers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs per figure")
    parser.add_argument("--length", type=int, default=3, help="steps per chain")
    parser.add_argument("--messages", type=int, default=300, help="start messages")
    parser.add_argument("--prefetch", type=int, default=1)
    parser.add_argument("--consumers", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument(
        "--only", nargs="+", metavar="WORD", help="the setups naming these words"
    )
    options = parser.parse_args()
    cluster = start_cluster()
    directory = Path(tempfile.mkdtemp(prefix="relstorage-dispatch-bench-"))
    servers = []
    rates: dict = {}
    cpu: dict = {}
    try:
        table, servers = setups(cluster, directory)
        if options.only:
            table = {
                name: setup
                for name, setup in table.items()
                if name == REFERENCE or any(word in name for word in options.only)
            }
        for _round in range(options.rounds):
            for consumers in options.consumers:
                for name, (targets, sources) in table.items():
                    rate, status, conflicts, cpu_ms = transitions(
                        list(sources),
                        list(targets),
                        consumers,
                        options.length,
                        options.messages,
                        options.prefetch,
                    )
                    if status != "succeeded":
                        raise SystemExit(f"{name}, {consumers}: run {status}")
                    rates.setdefault((name, consumers), []).append(rate)
                    cpu.setdefault((name, consumers), []).append(cpu_ms)
                    print(
                        f"{name}, {consumers}: {rate}/s, {cpu_ms} ms CPU, "
                        f"conflicts {conflicts}",
                        file=sys.stderr,
                    )
    finally:
        for server in servers:
            server.stop()
        stop_cluster(cluster)
    report(rates, cpu, options)


def report(rates: dict, cpu: dict, options) -> None:
    medians = {key: statistics.median(samples) for key, samples in rates.items()}
    names = list(dict.fromkeys(name for name, _ in rates))
    for (name, consumers), median in medians.items():
        line = {
            "figure": "transitions",
            "setup": name,
            "consumers": consumers,
            "prefetch": options.prefetch,
            "transitions": options.length * options.messages,
            "rounds": options.rounds,
            "per_second": median,
            "samples": rates[name, consumers],
            "cpu_ms_per_transition": statistics.median(cpu[name, consumers]),
            "ratio_to_reference": round(median / medians[REFERENCE, consumers], 2),
            "load_average": round(os.getloadavg()[0], 2),
            "unit": "transitions/s",
        }
        print(json.dumps(line), flush=True)
    heading = "".join(f"{consumers:>16}" for consumers in options.consumers)
    print(f"\n{'transitions/s (ratio)':<34}{heading}", file=sys.stderr)
    for name in names:
        cells = "".join(
            f"{medians[name, c]:>9,.0f} ({medians[name, c] / medians[REFERENCE, c]:.2f})"
            for c in options.consumers
        )
        print(f"{name:<34}{cells}", file=sys.stderr)


if __name__ == "__main__":
    main()
