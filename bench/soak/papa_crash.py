"""Soak: the papa kernel killed with SIGKILL again and again under its children.

``python bench/soak/papa_crash.py --kills 50 --children 50 --slurm-jobs 5``
(``make soak``).  A real ``python -m papa`` with a state directory, on a Unix
socket, runs local children (``papa_child.py``) that write numbered lines at
varied rates, on stdout and stderr: half with ``spill`` (output files the
kernel tails), half through pipes; a third run until the end, the others
exit with a code of their own during the run (some while no kernel runs).
Slurm jobs (the same program, on the real cluster's ``debug`` partition;
skipped with a message when ``sinfo`` is absent) do likewise.  One
``Papa()`` client watches everything in a thread and keeps watching through
the restarts (:mod:`_delivery`).  The controller sets a value, waits a
random moment, kills the kernel with SIGKILL and restarts it at once on the
same state directory, then checks:

* every child and job not yet delivered is listed again, with its pid or
  Slurm job id (``not_readopted`` must be 0);
* every value set is there (``values_lost`` must be 0);
* each spilled stream and each job's output, joined across the restarts, is
  the child's numbered lines in order, nothing missing, nothing repeated
  beyond the one batch the protocol may send again (``lost`` must be 0).

At the end the children are told to stop, the watch runs until every
``closed`` record was delivered: each carries the code the child really
exited with (``wrong_codes`` must be 0); spilled streams and jobs hold every
line the child wrote; one more kill and restart brings none of the delivered
processes back (``came_back`` must be 0).  It prints a table, then one JSON
line of figures; the exit status is 1 when anything is wrong.
``tests/papa/test_crash_soak.py`` runs a short version.
"""

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))

from _delivery import Client, Reader, numbered_lines  # noqa: E402
from _harness import ServerProcess, print_table, wait_until  # noqa: E402
from _servers import OURS, implementation_environment  # noqa: E402

import papa  # noqa: E402
from papa.slurm import tools  # noqa: E402

CHILD = HERE / "papa_child.py"
DEADLINE = 120.0
DELAYS = (0.002, 0.01, 0.03, 0.1)
CODES = (0, 1, 3, 7, 42, 99, 127)


class Kernel(ServerProcess):
    """``python -m papa`` on a Unix socket with a state directory."""

    def __init__(self, directory: Path):
        self.socket = str(directory / "papa.sock")
        super().__init__(
            [sys.executable, "-m", "papa", "-d", "-u", self.socket]
            + ["--state-dir", str(directory / "state")],
            implementation_environment(OURS, ROOT / "src"),
            directory / "kernel.log",
            DEADLINE,
        )

    def ready(self) -> bool:
        try:
            Client(self.socket, connection_timeout=0.2).close()
        except papa.Error:
            return False
        return True


def slurm_missing() -> str | None:
    """Why Slurm jobs cannot be part of this run, or None."""
    if shutil.which("sinfo") is None:
        return "sinfo is absent"
    try:
        partitions = tools.partition_names()
    except tools.SlurmCommandError as error:
        return f"no Slurm cluster answers ({error})"
    if "debug" not in [name.rstrip("*") for name in partitions]:
        return f"no debug partition (partitions {partitions})"
    return None


def plan(children, jobs, kills, generator):
    """Each process: name, tag, delay, seconds (0: until stopped), code, spill."""
    run_seconds = 1.2 * kills
    processes = []
    for number in range(children):
        seconds = 0.0 if number % 3 == 0 else generator.uniform(0.2, run_seconds)
        processes.append(
            {
                "name": f"child{number:02}",
                "delay": DELAYS[number % len(DELAYS)],
                "seconds": round(seconds, 2),
                "code": CODES[number % len(CODES)],
                "spill": number % 2 == 0,
                "bufsize": "4k" if number % 4 == 0 else "64k",
                "slurm": False,
            }
        )
    for number in range(jobs):
        processes.append(
            {
                "name": f"job{number}",
                "delay": 0.05,
                # A job pends while others hold the node's CPUs: it ends by itself.
                "seconds": round(generator.uniform(2.0, 6.0), 2),
                "code": CODES[(number + 2) % len(CODES)],
                "spill": True,  # a job's output is a file: never lost
                "bufsize": "4k" if number % 2 else "64k",
                "slurm": True,
            }
        )
    return processes


def start_process(client, process, directory):
    arguments = [sys.executable, "-I", "-S", str(CHILD), process["name"]]
    arguments += [str(process["delay"]), str(process["seconds"]), str(process["code"])]
    arguments += [str(directory / f"{process['name']}.report"), str(directory / "stop")]
    words = ["m", "p", process["name"], f"bufsize={process['bufsize']}"]
    if process["slurm"]:
        words += ["slurm=1", "slurm.partition=debug", "slurm.runtime=10:00"]
    elif process["spill"]:
        words.append("spill=1")
    # The client's make_process has papa's signature (no spill): the line.
    reply = client.connection.command(words + arguments)
    info = client._process_dict(reply)[1]
    return info["slurm_job"] if process["slurm"] else info["pid"]


def not_readopted(client, reader, identities):
    """Processes neither listed with their pid/job id nor delivered."""
    listed = client.list_processes()
    with reader.lock:
        delivered = set(reader.closed)
    missing = []
    for name, identity in identities.items():
        info = listed.get(name)
        if info is None:
            if name not in delivered:
                missing.append(name)
        elif info.get("slurm_job", info["pid"]) != identity:
            missing.append(name)
    return missing


def stream_problems(reader, processes, final):
    """(lines delivered, lines lost or out of place, bytes delivered twice,
    the streams with such lines)."""
    joined = reader.joined()
    lines = lost = twice = 0
    bad = []
    for process in processes:
        if not process["spill"]:
            continue  # pipes die with the kernel: only the code is checked
        report = final and process["report"]
        for index, kind in enumerate(("out", "err")):
            data, again = joined.get((process["name"], kind), (b"", 0))
            good, wrong = numbered_lines(data, process["name"], kind == "err")
            if report:
                wrong += abs(report[index] - good)
            lines += good
            lost += wrong
            twice += again
            if wrong:
                bad.append(f"{process['name']}.{kind}")
    return lines, lost, twice, bad


def read_report(directory, name):
    try:
        lines, errors, code = (directory / f"{name}.report").read_text().split()
    except (OSError, ValueError):
        return None
    return int(lines), int(errors), int(code)


def soak(kills, children, jobs, directory, seed):
    generator = random.Random(seed)
    skipped = None
    if jobs:
        skipped = slurm_missing()
        if skipped:
            print(f"Slurm jobs skipped: {skipped}", file=sys.stderr)
            jobs = 0
    processes = plan(children, jobs, kills, generator)
    kernel = Kernel(directory)
    started = time.monotonic()
    kernel.start()
    values = {}
    with Client(kernel.socket, connection_timeout=DEADLINE) as client:
        identities = {p["name"]: start_process(client, p, directory) for p in processes}
    reader = Reader(kernel.socket, time.monotonic() + DEADLINE * 10)
    reader.start()
    missing_total = values_lost = bad_restarts = 0
    restart_seconds = []
    try:
        for kill in range(kills):
            batches = reader.batches
            wait_until(
                lambda batches=batches: (
                    reader.batches > batches or reader.finished.is_set()
                ),
                DEADLINE,
                "the watcher receiving output again",
            )
            with Client(kernel.socket, connection_timeout=DEADLINE) as client:
                name, value = f"kill{kill}", str(generator.randrange(10**9))
                client.set(name, value)
                values[name] = value
            time.sleep(generator.uniform(0.0, 0.3))  # the kill's moment, at random
            kernel.kill()
            began = time.monotonic()
            kernel.start()
            restart_seconds.append(time.monotonic() - began)
            with Client(kernel.socket, connection_timeout=DEADLINE) as client:
                missing = not_readopted(client, reader, identities)
                listed = client.list_values()
            missing_total += len(missing)
            values_lost += sum(1 for k, v in values.items() if listed.get(k) != v)
            bad = stream_problems(reader, processes, final=False)[3]
            bad_restarts += bool(bad)
            for what, names in (("not re-adopted", missing), ("wrong lines", bad)):
                if names:
                    print(f"kill {kill}: {what}: {names}", file=sys.stderr)
    finally:
        (directory / "stop").touch()
    reader.stopping.set()
    reader.finished.wait(DEADLINE * 3)
    if reader.failure is not None or not reader.finished.is_set():
        raise RuntimeError(f"the watcher failed: {reader.failure!r}")
    for process in processes:
        process["report"] = read_report(directory, process["name"])
    lines, lost, twice, bad = stream_problems(reader, processes, final=True)
    if bad:
        print(f"at the end: lines lost or out of place in {bad}", file=sys.stderr)
    wrong_codes = sum(
        1
        for p in processes
        if p["report"] is None
        or not reader.closed.get(p["name"])
        or any(code != p["report"][2] for code in reader.closed[p["name"]])
    )
    kernel.kill()
    kernel.start()
    with Client(kernel.socket, connection_timeout=DEADLINE) as client:
        came_back = sorted(client.list_processes())
        listed = client.list_values()
    values_lost += sum(1 for k, v in values.items() if listed.get(k) != v)
    kernel.stop()
    return {
        "soak": "papa_crash",
        "seed": seed,
        "kills": kills,
        "children": children,
        "spilled": sum(1 for p in processes if p["spill"] and not p["slurm"]),
        "slurm_jobs": jobs,
        "slurm_skipped": skipped,
        "lines": lines,
        "bytes_twice": twice,
        "batches": reader.batches,
        "watches": reader.watches,
        "not_readopted": missing_total,
        "values_lost": values_lost,
        "lost": lost,
        "restarts_with_wrong_lines": bad_restarts,
        "wrong_codes": wrong_codes,
        "came_back": came_back,
        "restart_median_s": round(sorted(restart_seconds)[len(restart_seconds) // 2], 3)
        if restart_seconds
        else None,
        "seconds": round(time.monotonic() - started, 1),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--children", type=int, default=50)
    parser.add_argument("--slurm-jobs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--directory", type=Path, default=None)
    arguments = parser.parse_args(argv)
    seed = arguments.seed if arguments.seed is not None else random.randrange(2**32)
    # A short folder: the Unix socket's path must fit in 107 bytes.
    directory = arguments.directory or Path(tempfile.mkdtemp(prefix="papa_crash-"))
    figures = soak(
        arguments.kills, arguments.children, arguments.slurm_jobs, directory, seed
    )
    print_table(
        ["kills", "children", "jobs", "lines", "lost", "wrong codes", "time"],
        [
            [
                figures["kills"],
                figures["children"],
                figures["slurm_jobs"],
                figures["lines"],
                figures["lost"],
                figures["wrong_codes"],
                f"{figures['seconds']} s",
            ]
        ],
    )
    print(json.dumps(figures))
    bad = (
        figures["lost"]
        or figures["restarts_with_wrong_lines"]
        or figures["wrong_codes"]
        or figures["not_readopted"]
        or figures["values_lost"]
        or figures["came_back"]
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
