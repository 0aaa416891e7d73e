"""Web console latency with 100,000 runs: the runs list, its filters, a
far page, a run page and /metrics, side by side with ``dispatch list``.

A FileStorage is filled directly through ``dispatch.state`` in big
transactions (80% succeeded, 10% failed, 5% cancelled, 5% running, four
recipe names, start times spread over ten days), ``runzeo`` serves it,
``dispatch web`` is started on it as a process, and each request is timed
over keep-alive HTTP (the first of each is a warm-up, left out).  The
peer is our own CLI: ``dispatch list`` with the same filters, timed as a
whole process (start, connect, cold cache, list), as an operator without
the console would run it; there is no real peer for runs pages.  Also the
time from a commit to its server-sent event (the console's live update).

Prints one JSON line per figure (``p50_ms``, ``p90_ms``, and for listings
``cli_p50_ms`` and ``cli_over_web``).  Targets (issue 11): runs list p50
<= 50 ms, a run page <= 30 ms, an update within 0.5 s.
"""

import argparse
import http.client
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import transaction
import ZODB
from ZODB.FileStorage import FileStorage

from bench._servers import ROOT, start_our_runzeo, wait_until
from dispatch.state import admin, broker

RECIPES = ("ingest", "reduce", "publish", "calibrate")
# Share of runs in each end state, by position in each 20.
FAILED_EVERY, CANCELLED_EVERY, RUNNING_EVERY = 10, 20, 20
SPAN = 10 * 86400.0  # start times spread over this many seconds before now
BATCH = 2000  # runs per transaction while filling


def recipe(queue):
    return {"1": {"service": "worker", "queue": queue}, "start": [[1, {}]]}


def fill(path, runs):
    """*runs* runs in a new FileStorage at *path*; returns (seconds, a
    succeeded run's id)."""
    logging.getLogger("dispatch").setLevel(logging.ERROR)
    started = time.perf_counter()
    database = ZODB.DB(FileStorage(str(path)), cache_size=50_000)
    connection = database.open()
    dispatch = broker.get_dispatch(connection.root())
    now = time.time()
    sample = None
    for number in range(runs):
        created = now - SPAN + SPAN * number / runs
        name = RECIPES[number % len(RECIPES)]
        if number % RUNNING_EVERY == 3:
            broker.start_run(dispatch, recipe("waiting"), now=created, name=name)
        elif number % CANCELLED_EVERY == 7:
            run = broker.start_run(dispatch, recipe("waiting"), now=created, name=name)
            admin.cancel_run(dispatch, run, now=created + 1)
        else:
            run = broker.start_run(dispatch, recipe("work"), now=created, name=name)
            message = broker.claim(dispatch, "work", "filler", now=created + 1)
            assert message is not None and message.run_id == run.id
            if number % FAILED_EVERY == 5:
                broker.dead_letter(dispatch, message, "made to fail", now=created + 2)
            else:
                broker.finish(dispatch, message, now=created + 2, exit_code=0)
                if number == runs // 2:
                    sample = run.id
        if number % BATCH == BATCH - 1:
            transaction.commit()
            connection.cacheGC()
    transaction.commit()
    connection.close()
    database.close()
    return time.perf_counter() - started, sample


def start_console(directory, zeo_address):
    """``dispatch web`` on *zeo_address*; returns (process, port)."""
    configuration = directory / "dispatch.conf"
    configuration.write_text(
        f"zeo {zeo_address}\n"
        "<service worker>\n  instances 0\n</service>\n"
        f"<web>\n  bind 127.0.0.1:0\n  token-file {directory / 'web.token'}\n</web>\n"
    )
    environment = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}:{ROOT}")
    command = [sys.executable, "-m", "dispatch.cli", "web", "-C", str(configuration)]
    subprocess.run(
        [*command, "--new-token"], check=True, env=environment, capture_output=True
    )
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=environment,
    )
    line = process.stdout.readline()
    found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    if not found:
        process.kill()
        raise SystemExit(f"dispatch web did not start: {line!r}")
    return process, int(found.group(1))


def timed_requests(port, path, repeat):
    """Milliseconds of *repeat* GETs of *path* (after one warm-up)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    times = []
    for attempt in range(repeat + 1):
        started = time.perf_counter()
        connection.request("GET", path)
        reply = connection.getresponse()
        body = reply.read()
        elapsed = (time.perf_counter() - started) * 1000
        if reply.status != 200:
            raise SystemExit(f"GET {path}: {reply.status} {body[:200]!r}")
        if attempt:
            times.append(elapsed)
    connection.close()
    return times


def timed_cli(zeo_address, arguments, repeat):
    """Milliseconds of *repeat* ``dispatch list`` processes."""
    environment = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}:{ROOT}")
    command = [sys.executable, "-m", "dispatch.cli", "list", "--zeo", zeo_address]
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(
            [*command, "--json", *arguments],
            check=True,
            env=environment,
            capture_output=True,
        )
        times.append((time.perf_counter() - started) * 1000)
    return times


def percentile(times, share):
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def update_latency(port, zeo_address, repeat):
    """Milliseconds from a commit (a run started) to its SSE event."""
    import zeo

    host, zeo_port = zeo_address.rsplit(":", 1)
    database = zeo.DB((host, int(zeo_port)))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/api/events")
    stream = connection.getresponse()
    assert stream.readline().startswith(b"event: ready")
    times = []
    try:
        for _ in range(repeat):
            stream.readline()
            stream.readline()  # the ready event's data and blank line
            manager = transaction.TransactionManager()
            zodb = database.open(manager)
            manager.begin()
            broker.start_run(broker.get_dispatch(zodb.root()), recipe("live"))
            started = time.perf_counter()
            manager.commit()
            zodb.close()
            while not stream.readline().startswith(b"event: commit"):
                pass
            times.append((time.perf_counter() - started) * 1000)
    finally:
        connection.close()
        database.close()
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15, help="requests a figure")
    parser.add_argument("--cli-repeat", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        seconds, sample = fill(directory / "Data.fs", options.runs)
        size = (directory / "Data.fs").stat().st_size
        print(
            json.dumps(
                {
                    "bench": "web",
                    "figure": "fill",
                    "runs": options.runs,
                    "seconds": round(seconds, 1),
                    "bytes": size,
                }
            ),
            flush=True,
        )
        server, zeo_address = start_our_runzeo(directory)
        console = None
        try:
            console, port = start_console(directory, zeo_address)
            wait_until(
                lambda: timed_requests(port, "/api/runs", 0) is not None,
                60,
                "the console answering",
            )
            listings = [
                ("runs first page", "", []),
                ("runs state=failed", "state=failed", ["--state", "failed"]),
                ("runs recipe=reduce", "recipe=reduce", ["--recipe", "reduce"]),
                ("runs age=1h", "age=1h", ["--age", "1h"]),
                ("runs page 100", "page=100", ["--page", "100"]),
                (
                    "runs state=running&recipe=ingest&page=20",
                    "state=running&recipe=ingest&page=20",
                    ["--state", "running", "--recipe", "ingest", "--page", "20"],
                ),
            ]
            for figure, query, cli in listings:
                web = timed_requests(port, f"/api/runs?size=50&{query}", options.repeat)
                peer = timed_cli(zeo_address, cli, options.cli_repeat)
                line = {
                    "bench": "web",
                    "figure": figure,
                    "runs": options.runs,
                    "p50_ms": round(statistics.median(web), 2),
                    "p90_ms": round(percentile(web, 0.9), 2),
                    "cli_p50_ms": round(statistics.median(peer), 1),
                }
                line["cli_over_web"] = round(line["cli_p50_ms"] / line["p50_ms"], 1)
                print(json.dumps(line), flush=True)
            for figure, path in (
                ("run page", f"/runs/{sample}"),
                ("run json", f"/api/runs/{sample}"),
                ("metrics", "/metrics"),
                ("runs html first page", "/runs"),
            ):
                web = timed_requests(port, path, options.repeat)
                print(
                    json.dumps(
                        {
                            "bench": "web",
                            "figure": figure,
                            "runs": options.runs,
                            "p50_ms": round(statistics.median(web), 2),
                            "p90_ms": round(percentile(web, 0.9), 2),
                        }
                    ),
                    flush=True,
                )
            live = update_latency(port, zeo_address, options.repeat)
            print(
                json.dumps(
                    {
                        "bench": "web",
                        "figure": "commit to event",
                        "runs": options.runs,
                        "p50_ms": round(statistics.median(live), 2),
                        "p90_ms": round(percentile(live, 0.9), 2),
                    }
                ),
                flush=True,
            )
        finally:
            if console is not None:
                console.terminate()
                console.wait()
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
