"""Our zeo against real ZEO 6.2, side by side in one run.

Starts our server (``python -m zeo.runzeo``) and real ZEO's (``.peers/zeo``)
on FileStorages in a temporary directory and free 127.0.0.1 ports, then, for
1 and 4 client processes of each implementation (our client against our
server, the real client against the real server), measures:

- ``commit_add`` / ``commit_update``: transactions per second, 10 small
  objects a transaction (new objects, then updates of the client's own);
- ``read_cold``: objects loaded per second by clients with empty caches;
- ``read_warm``: objects loaded per second, all client-cache hits;
- ``ping_median`` / ``ping_p90``: round-trip latency of ``ping`` in µs.

Each figure is printed as one JSON line on stdout::

    {"figure": "read_cold", "clients": 1, "ours": 9000.0, "zeo": 2500.0,
     "ratio": 3.6, "unit": "objects/s"}

``ratio`` is oriented so that > 1 means ours is better (ours/zeo for rates,
zeo/ours for latencies).  Every figure is the median of ``--repeat`` runs; the
two columns alternate which goes first in each repeat to spread the noise of
a 2-core machine evenly.  Progress and settings go to stderr.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import _profiling
from _servers import (
    IMPLEMENTATIONS,
    OURS,
    REAL,
    implementation_environment,
    require_real_zeo,
    start_server,
)

WORKER = Path(__file__).resolve().parent / "_worker.py"

# Task name -> (figure names, unit, higher is better).
TASKS = {
    "commit_add": (("commit_add",), "txn/s", True),
    "commit_update": (("commit_update",), "txn/s", True),
    "read_cold": (("read_cold",), "objects/s", True),
    "read_warm": (("read_warm",), "objects/s", True),
    "ping": (("ping_median", "ping_p90"), "us", False),
}

# Sizes of one measurement per client: each takes 1 to 3 s on this machine
# with real ZEO, long enough to dwarf the start barrier, short enough that
# three repeats of everything finish in a few minutes.
FULL_SIZES = {"transactions": 300, "objects": 2000, "passes": 20, "pings": 2000}
QUICK_SIZES = {"transactions": 20, "objects": 200, "passes": 2, "pings": 100}

# A measurement that has not finished after this long is hung: its workers
# are killed and the figure reported as an error.
RUN_DEADLINE = 600.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class WorkerError(RuntimeError):
    """A worker process failed; the message carries the end of its stderr."""


def worker_spec(code, server, task, sizes, oids_path) -> dict:
    return {
        "code": code,
        "address": list(server.address),
        "task": task,
        "transactions": sizes["transactions"],
        "passes": sizes["passes"],
        "count": sizes["pings"],
        "oids_path": str(oids_path),
    }


def run_workers(code, server, spec, clients, workdir, profiler=None) -> list:
    """Start ``clients`` workers, release them together.

    Returns the workers' reports and the CPU seconds the server used between
    the start and the last report.  ``code`` is the implementation the
    workers import; ``profiler``, when given, records the first worker of the
    run with py-spy.
    """
    processes = []
    stderr_paths = []
    for index in range(clients):
        stderr_path = workdir / f"worker-{server.column}-{spec['task']}-{index}.log"
        stderr_paths.append(stderr_path)
        with open(stderr_path, "wb") as stderr:
            processes.append(
                subprocess.Popen(
                    [sys.executable, str(WORKER), json.dumps(spec)],
                    env=implementation_environment(code),
                    cwd=workdir,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                    text=True,
                )
            )

    def kill_all():
        for process in processes:
            if process.poll() is None:
                process.kill()

    watchdog = threading.Timer(RUN_DEADLINE, kill_all)
    watchdog.start()
    try:
        for index, process in enumerate(processes):
            line = process.stdout.readline()
            if not line or not json.loads(line).get("ready"):
                raise WorkerError(failure_text(process, stderr_paths[index]))
        recording = None
        if profiler is not None:
            recording = profiler.attach(processes[0].pid, spec["task"], clients)
        server_cpu = server.cpu_seconds()
        for process in processes:
            process.stdin.write("go\n")
            process.stdin.flush()
        reports = []
        for index, process in enumerate(processes):
            line = process.stdout.readline()
            if not line:
                raise WorkerError(failure_text(process, stderr_paths[index]))
            reports.append(json.loads(line))
        server_cpu = server.cpu_seconds() - server_cpu
        for index, process in enumerate(processes):
            if process.wait() != 0:
                raise WorkerError(failure_text(process, stderr_paths[index]))
        if recording is not None:
            recording.finish()
        return reports, server_cpu
    finally:
        watchdog.cancel()
        kill_all()
        for process in processes:
            process.wait()
            process.stdin.close()
            process.stdout.close()


def failure_text(process, stderr_path) -> str:
    process.kill()
    code = process.wait()
    tail = "\n".join(stderr_path.read_text(errors="replace").splitlines()[-25:])
    return f"worker exited with {code}; end of {stderr_path}:\n{tail}"


def summarise(task, reports) -> dict:
    """Figure name -> value for one measurement (all clients together)."""
    if task == "ping":
        latencies = sorted(n for report in reports for n in report["latencies_ns"])
        deciles = statistics.quantiles(latencies, n=10)
        return {
            "ping_median": statistics.median(latencies) / 1000.0,
            "ping_p90": deciles[8] / 1000.0,
        }
    operations = sum(report["operations"] for report in reports)
    span = max(report["end"] for report in reports) - min(
        report["start"] for report in reports
    )
    return {task: operations / span}


def cpu_costs(reports, server_cpu) -> tuple:
    """CPU µs per operation in the clients (all together) and in the server.

    Unlike the rates these do not depend on how the 2 cores were shared, so
    they say where the time goes even on a loaded machine.
    """
    operations = sum(report["operations"] for report in reports)
    client_cpu = sum(report["cpu"] for report in reports)
    return 1e6 * client_cpu / operations, 1e6 * server_cpu / operations


def figure_line(figure, clients, unit, higher_is_better, values) -> dict:
    ours = values.get(OURS)
    zeo = values.get(REAL)
    ratio = None
    if ours and zeo:
        ratio = ours / zeo if higher_is_better else zeo / ours
    line = {"figure": figure, "clients": clients, "ours": ours, "zeo": zeo}
    line["ratio"] = None if ratio is None else round(ratio, 3)
    line["unit"] = unit
    for key in ("ours", "zeo"):
        if line[key] is not None:
            line[key] = round(line[key], 1)
    return line


def paired_ratio(ours, zeo, higher_is_better):
    """Median of the per-repeat ratios (each repeat's two runs were adjacent).

    On a machine loaded by something else the load drifts between repeats;
    the runs of one repeat share more of it than the medians of each column
    do, so this is the steadier estimate when the two disagree.
    """
    if not ours or len(ours) != len(zeo):
        return None
    ratios = [
        (mine / theirs if higher_is_better else theirs / mine)
        for mine, theirs in zip(ours, zeo, strict=True)
        if mine and theirs
    ]
    return statistics.median(ratios) if ratios else None


def print_results(tasks, client_counts, samples, cpu_samples) -> None:
    """The figure lines on stdout; paired ratios and CPU costs on stderr."""
    log("figure, clients: paired ratio | median CPU µs/op, clients + server")
    for task in tasks:
        figures, unit, higher_is_better = TASKS[task]
        for clients in client_counts:
            for figure in figures:
                per_column = samples.get((task, clients), {}).get(figure, {})
                values = {
                    column: statistics.median(found)
                    for column, found in per_column.items()
                    if found
                }
                line = figure_line(figure, clients, unit, higher_is_better, values)
                print(json.dumps(line), flush=True)
                paired = paired_ratio(
                    per_column.get(OURS), per_column.get(REAL), higher_is_better
                )
                costs = []
                for column in IMPLEMENTATIONS:
                    found = cpu_samples.get((task, clients), {}).get(column)
                    if found:
                        client = statistics.median(cost[0] for cost in found)
                        server = statistics.median(cost[1] for cost in found)
                        costs.append(f"{column} {client:.1f} + {server:.1f}")
                paired_text = "-" if paired is None else f"{paired:.3f}"
                log(f"  {figure} x{clients}: {paired_text} | " + "; ".join(costs))


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="runs per figure, median reported (default 3, 1 with --quick)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--encoding",
        choices=("msgpack", "pickle"),
        default="msgpack",
        help="wire encoding of both servers (<zeo> msgpack true/false)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(TASKS),
        help="measure only this figure (repeatable)",
    )
    parser.add_argument(
        "--clients",
        default="1,4",
        help="comma-separated client process counts (default 1,4)",
    )
    parser.add_argument(
        "--ours-is-real",
        action="store_true",
        help="debug: run real ZEO in the 'ours' column too",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        type=Path,
        help="record both servers, and one of our clients per measurement, with py-spy into DIR",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary directory (logs, Data.fs)",
    )
    arguments = parser.parse_args(argv)
    if arguments.repeat is None:
        arguments.repeat = 1 if arguments.quick else 3
    arguments.clients = [int(count) for count in arguments.clients.split(",")]
    return arguments


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    require_real_zeo()
    sizes = QUICK_SIZES if arguments.quick else FULL_SIZES
    tasks = arguments.only or list(TASKS)
    codes = {OURS: REAL if arguments.ours_is_real else OURS, REAL: REAL}
    workdir = Path(tempfile.mkdtemp(prefix="zeo_bench-"))
    log(
        f"zeo_bench: encoding={arguments.encoding} repeat={arguments.repeat} "
        f"clients={arguments.clients} sizes={sizes} ours={codes[OURS]} dir={workdir}"
    )
    servers = {}
    profiler = None
    failures = 0
    try:
        for column in IMPLEMENTATIONS:
            servers[column] = start_server(
                column, codes[column], workdir / column, arguments.encoding
            )
            log(f"{column} server ({codes[column]}) on {servers[column].address}")
        if arguments.profile:
            profiler = _profiling.Profiler(arguments.profile)
            for column in IMPLEMENTATIONS:
                profiler.record_server(servers[column].process.pid, column)
        oids_paths = {}
        for column in IMPLEMENTATIONS:
            oids_paths[column] = workdir / f"oids-{column}.json"
            spec = worker_spec(
                codes[column], servers[column], "populate", sizes, oids_paths[column]
            )
            spec["count"] = sizes["objects"]
            run_workers(codes[column], servers[column], spec, 1, workdir)
        # (task, clients) -> figure -> column -> [values]
        samples = {}
        # (task, clients) -> column -> [(client, server) CPU µs per operation]
        cpu_samples = {}
        for repeat in range(arguments.repeat):
            order = IMPLEMENTATIONS if repeat % 2 == 0 else IMPLEMENTATIONS[::-1]
            for task in tasks:
                for clients in arguments.clients:
                    for column in order:
                        key = (task, clients)
                        spec = worker_spec(
                            codes[column],
                            servers[column],
                            task,
                            sizes,
                            oids_paths[column],
                        )
                        try:
                            reports, server_cpu = run_workers(
                                codes[column],
                                servers[column],
                                spec,
                                clients,
                                workdir,
                                profiler if column == OURS else None,
                            )
                        except (WorkerError, ValueError, KeyError) as error:
                            failures += 1
                            log(f"{column} {task} x{clients} failed: {error}")
                            continue
                        figures = summarise(task, reports)
                        for figure, value in figures.items():
                            samples.setdefault(key, {}).setdefault(
                                figure, {}
                            ).setdefault(column, []).append(value)
                        costs = cpu_costs(reports, server_cpu)
                        cpu_samples.setdefault(key, {}).setdefault(column, []).append(
                            costs
                        )
                        log(
                            f"repeat {repeat + 1}: {column} {task} x{clients}: "
                            + ", ".join(
                                f"{name} {value:.1f}" for name, value in figures.items()
                            )
                            + f"; CPU µs/op client {costs[0]:.1f} server {costs[1]:.1f}"
                        )
        print_results(tasks, arguments.clients, samples, cpu_samples)
    finally:
        if profiler is not None:
            profiler.finish()
        for server in servers.values():
            server.stop()
        if arguments.keep or failures:
            log(f"kept {workdir}")
        else:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
