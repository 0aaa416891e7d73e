"""dispatch throughput and latency on a real runzeo server.

Starts ``python -m zeo.runzeo`` on a FileStorage in a temporary directory,
then measures, printing one JSON line per figure on stdout:

- ``transitions``: step transitions per second (each one a consume-and-
  produce: claim, then finish plus the next message) through 1 and through 4
  consumer processes sharing one queue, for each ``--prefetch`` (messages
  claimed and committed together; 1 is one transaction pair per message):
  the median of ``--rounds`` runs (1 and 4 consumers alternate, so that
  both meet the same noise), with every run's figure, the ConflictErrors
  the consumers met (by phase: claim, complete, release) and the CPU time
  of the consumers and runzeo per transition (median; Linux);
- ``scaling``: for each prefetch, the median with 4 consumers divided by
  the median with 1 (the goal is at least 1);
- ``go_to_first_step``: median seconds from the commit that starts a run to
  its first step's handler being called, with an idle service waiting on
  zeo ``watch()``.

There is no peer to compare with here (zocalo needs a broker); the issue's
goal is 1,000 transitions/s on a 2-core machine.  Progress goes to stderr.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from _servers import start_our_runzeo  # noqa: E402

import zeo  # noqa: E402
from dispatch.cli.base import open_database  # noqa: E402
from dispatch.runtime.consumer import Consumer  # noqa: E402
from dispatch.state import broker, model  # noqa: E402
from dispatch.state.database import dispatch_state, write_retried  # noqa: E402


def chain_recipe(length, messages):
    """*length* steps on one queue, each sending to the next."""
    recipe = {"start": [[1, n] for n in range(messages)]}
    for node in range(1, length + 1):
        recipe[str(node)] = {"queue": "bench"}
        if node < length:
            recipe[str(node)]["output"] = node + 1
    return recipe


def target_text(target):
    """A zeo address tuple as ``host:port``; text (``host:port`` or
    ``zodb:PATH``) as it is."""
    return target if isinstance(target, str) else f"{target[0]}:{target[1]}"


def consume_until_told(target, prefetch):
    """Consumer process body: say ``ready``, serve the queue until a line
    comes on stdin, then print the ConflictErrors met as JSON.  *target*:
    ``host:port`` of a zeo server or ``zodb:PATH`` (dispatch.direct)."""
    database = open_database(target)
    consumer = Consumer(
        database, "bench", lambda rw, payload: rw.send(payload), prefetch=prefetch
    )
    stop = threading.Event()
    thread = threading.Thread(target=consumer.serve, args=(stop,))
    thread.start()
    print("ready", flush=True)
    began = time.process_time()
    sys.stdin.readline()
    cpu = time.process_time() - began
    stop.set()
    consumer.wake()
    thread.join()
    consumer.close()
    database.close()
    conflicts = dict(getattr(consumer, "conflicts", {}))
    print(json.dumps({"conflicts": conflicts, "cpu": cpu}), flush=True)


def process_cpu(pid, children=False):
    """CPU seconds process *pid* used so far (with *children*, also those
    of its children it has waited for), or 0 (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def server_cpu(server):
    """CPU seconds the runzeo process used so far (Linux), or 0."""
    return process_cpu(server.pid)


def wait_for_end(database, run_id):
    """Block until run *run_id* is no longer running (woken by commits)."""
    changed = threading.Event()
    handle = database.storage.watch(lambda tid, oids: changed.set())
    try:
        while True:
            changed.clear()
            with dispatch_state(database) as dispatch:
                status = dispatch.runs[run_id].status
            if status != model.RUNNING:
                return status
            changed.wait()
    finally:
        handle.close()


def start_run(database, recipe):
    """Start a run, tried again on a conflict, as ``dispatch go`` does."""
    return write_retried(
        database, lambda dispatch: broker.start_run(dispatch, recipe).id
    )


def transitions(server, address, consumers, length, messages, prefetch):
    """One run through *consumers* processes: ``(transitions/s, status,
    conflicts, CPU ms per transition)``.  Consumers start and connect first; the clock runs from
    the commit that starts the run to the commit that ends it.

    *server*: the runzeo process (its CPU is counted), or a list of
    zero-argument functions each giving CPU seconds used so far.
    *address*: a zeo address, ``zodb:PATH``, or a list of them (consumer
    *i* opens the *i*-th, in turn; the run is started through the first)."""
    targets = [target_text(target) for target in _listed(address)]
    if isinstance(server, list):
        cpu_sources = server
    else:
        cpu_sources = [lambda: server_cpu(server)]
    database = open_database(targets[0])
    conflicts = {}
    processes = []
    try:
        processes += [
            subprocess.Popen(
                [sys.executable, __file__, "--consume", targets[index % len(targets)]]
                + [str(prefetch)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for index in range(consumers)
        ]
        for process in processes:
            assert process.stdout.readline().strip() == "ready"
        began = time.perf_counter()
        cpu = -sum(source() for source in cpu_sources)
        run_id = start_run(database, chain_recipe(length, messages))
        status = wait_for_end(database, run_id)
        seconds = time.perf_counter() - began
        cpu += sum(source() for source in cpu_sources)
        for process in processes:
            process.stdin.write("stop\n")
            process.stdin.flush()
        for process in processes:
            report = json.loads(process.stdout.readline())
            cpu += report["cpu"]
            for phase, count in report["conflicts"].items():
                conflicts[phase] = conflicts.get(phase, 0) + count
            process.wait()
    finally:
        for process in processes:
            if process.poll() is None:  # interrupted: leave nothing running
                process.kill()
                process.wait()
        database.close()
    count = length * messages
    return round(count / seconds, 1), status, conflicts, round(cpu * 1000 / count, 3)


def _listed(address):
    if isinstance(address, list):
        return address
    return [address]


def transition_figures(server, address, options):
    """``transitions`` lines (medians of the rounds) and ``scaling`` lines."""
    for prefetch in options.prefetch:
        samples = {consumers: [] for consumers in options.consumers}
        conflicts = {consumers: {} for consumers in options.consumers}
        cpu = {consumers: [] for consumers in options.consumers}
        statuses = set()
        for _round in range(options.rounds):
            for consumers in options.consumers:
                rate, status, met, cpu_ms = transitions(
                    server,
                    address,
                    consumers,
                    options.length,
                    options.messages,
                    prefetch,
                )
                cpu[consumers].append(cpu_ms)
                print(
                    f"prefetch {prefetch}, {consumers}: {rate}/s, {cpu_ms} ms CPU",
                    file=sys.stderr,
                )
                samples[consumers].append(rate)
                statuses.add(status)
                for phase, count in met.items():
                    conflicts[consumers][phase] = (
                        conflicts[consumers].get(phase, 0) + count
                    )
        medians = {}
        for consumers in options.consumers:
            medians[consumers] = statistics.median(samples[consumers])
            line = {
                "figure": "transitions",
                "consumers": consumers,
                "prefetch": prefetch,
                "transitions": options.length * options.messages,
                "rounds": options.rounds,
                "per_second": medians[consumers],
                "samples": samples[consumers],
                "conflicts": conflicts[consumers],
                "cpu_ms_per_transition": statistics.median(cpu[consumers]),
                "runs": sorted(statuses),
                "unit": "transitions/s",
            }
            print(json.dumps(line), flush=True)
        if 1 in medians and 4 in medians:
            ratio = {"figure": "scaling", "prefetch": prefetch}
            ratio["four_to_one"] = round(medians[4] / medians[1], 2)
            print(json.dumps(ratio), flush=True)


def go_to_first_step(address, repeat):
    database = zeo.DB(address)
    called = threading.Event()
    stamps = []
    consumer = Consumer(
        database, "latency", lambda rw, p: (stamps.append(time.time()), called.set())
    )
    stop = threading.Event()
    thread = threading.Thread(target=consumer.serve, args=(stop,))
    thread.start()
    delays = []
    try:
        for _ in range(repeat):
            called.clear()
            began = time.time()
            start_run(database, {"1": {"queue": "latency"}, "start": [[1, None]]})
            called.wait(60)
            delays.append(stamps[-1] - began)
    finally:
        stop.set()
        consumer.wake()
        thread.join()
        consumer.close()
        database.close()
    print(
        json.dumps(
            {
                "figure": "go_to_first_step",
                "median_ms": round(statistics.median(delays) * 1000, 2),
                "max_ms": round(max(delays) * 1000, 2),
                "repeat": repeat,
            }
        ),
        flush=True,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=10, help="steps per chain")
    parser.add_argument("--messages", type=int, default=200, help="start messages")
    parser.add_argument("--repeat", type=int, default=20, help="latency samples")
    parser.add_argument("--rounds", type=int, default=5, help="runs per figure")
    parser.add_argument(
        "--consumers",
        type=int,
        nargs="+",
        default=[1, 4],
        help="consumer processes (one figure for each)",
    )
    parser.add_argument(
        "--prefetch",
        type=int,
        nargs="+",
        default=[1, 20],
        help="messages claimed and committed together (one figure for each)",
    )
    parser.add_argument("--consume", nargs=2, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.consume:
        consume_until_told(options.consume[0], int(options.consume[1]))
        return
    with tempfile.TemporaryDirectory() as directory:
        server, text = start_our_runzeo(Path(directory))
        try:
            host, port = text.rsplit(":", 1)
            address = (host, int(port))
            print(f"runzeo at {text}", file=sys.stderr)
            go_to_first_step(address, options.repeat)
            transition_figures(server, address, options)
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
