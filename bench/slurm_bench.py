"""Slurm jobs through papa against a plain ``sbatch`` + ``squeue`` loop.

Needs a Slurm cluster answering (``make slurm-up`` starts the one-node test
cluster); without one it says so and exits 2.  It starts its own kernel
(``python -m papa``) on a free 127.0.0.1 port with a temporary state dir, and
measures in the same run:

- ``submit_to_running_s``: from the submit call until the job is seen
  running.  Ours: ``make_process`` until a watcher receives the job's first
  output line (the job is ``echo up``).  Plain: ``sbatch --parsable`` until
  ``squeue -h -t all -j ID -o %T`` polled every ``--plain-interval`` seconds
  shows RUNNING or a later state;
- ``submit_to_completed_s``: the same until the watcher has the exit code,
  and until squeue shows COMPLETED;
- ``submit_200_jobs_per_s``: 200 held jobs (``--hold``) submitted one after
  the other: ``make_process`` calls, and ``sbatch`` calls (then cancelled).

Slurm starts batch jobs on its own 1 s scheduling tick, which is the floor
of both latencies; submissions are spread with a random pause so they land
at random points of that tick, and ours and the plain loop alternate which
goes first.  One JSON line per figure on stdout::

    {"figure": "submit_to_completed_s", "ours": 0.61, "plain": 0.55, "ratio": 0.9, ...}

``ratio`` > 1 means ours is better (plain/ours for times, ours/plain for
jobs/s).  Figures are medians over ``--repeat`` runs of ``--jobs`` samples
each (per-run medians).  Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from _kernels import start_listening_kernel  # noqa: E402
from _servers import free_port  # noqa: E402

import papa  # noqa: E402
from papa.slurm import tools  # noqa: E402

DEADLINE_SECONDS = 60
THROUGHPUT_JOBS = 200
LATER_THAN_RUNNING = {"RUNNING", "COMPLETING", "COMPLETED"}


def cluster_problem() -> str | None:
    """Why no cluster can be used, or None when one answers."""
    try:
        tools.partition_names()
    except tools.SlurmCommandError as error:
        return str(error)
    return None


def start_kernel(port: int, state_dir: str) -> subprocess.Popen:
    environment = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    command = [sys.executable, "-m", "papa", "-p", str(port), "--state-dir", state_dir]
    return start_listening_kernel(
        command, port, environment, state_dir, "the papa kernel"
    )


def ours_once(client: papa.Papa, name: str) -> tuple[float, float]:
    """Seconds from make_process to the first output, and to the exit code."""
    began = time.monotonic()
    client.make_process(name, "/bin/sh", ["-c", "echo up"], slurm={})
    watcher = client.watch_processes(name)
    running = completed = None
    deadline = began + DEADLINE_SECONDS
    while watcher:
        if time.monotonic() > deadline:
            raise SystemExit(f"job {name} did not end within {DEADLINE_SECONDS} s")
        out, _, closed = watcher.read()
        now = time.monotonic()
        if (out or closed) and running is None:
            running = now - began
        if closed:
            if closed[0].data != 0:
                raise SystemExit(f"job {name} failed with {closed[0].data}")
            completed = now - began
    # The entry went when the watcher consumed its exit code.
    return running, completed


def squeue_state(job_id: str) -> str:
    return subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"],
        capture_output=True,
        text=True,
    ).stdout.strip()


def plain_once(folder: str, interval: float) -> tuple[float, float]:
    """Seconds from sbatch to squeue showing RUNNING (or later), and COMPLETED."""
    began = time.monotonic()
    job_id = subprocess.run(
        [
            "sbatch",
            "--parsable",
            f"--output={folder}/plain-%j.out",
            "--wrap",
            "echo up",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    running = None
    deadline = began + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        state = squeue_state(job_id)
        now = time.monotonic()
        if state in LATER_THAN_RUNNING and running is None:
            running = now - began
        if state == "COMPLETED":
            return running, now - began
        if state and state not in LATER_THAN_RUNNING | {"PENDING", "CONFIGURING"}:
            raise SystemExit(f"plain job {job_id} ended as {state}")
        time.sleep(interval)
    raise SystemExit(f"plain job {job_id} did not end within {DEADLINE_SECONDS} s")


def latency_run(client, folder: str, jobs: int, interval: float, run: int) -> dict:
    samples = {"ours": ([], []), "plain": ([], [])}
    for number in range(jobs):
        order = ("ours", "plain") if number % 2 == 0 else ("plain", "ours")
        for side in order:
            time.sleep(random.uniform(0, 0.9))
            if side == "ours":
                running, completed = ours_once(client, f"lat-{run}-{number}")
            else:
                running, completed = plain_once(folder, interval)
            samples[side][0].append(running)
            samples[side][1].append(completed)
    return {
        side: (statistics.median(running), statistics.median(completed))
        for side, (running, completed) in samples.items()
    }


def throughput_run(client, folder: str, run: int) -> dict:
    began = time.monotonic()
    for number in range(THROUGHPUT_JOBS):
        client.make_process(
            f"thr-{run}-{number}", "/bin/true", slurm={"options": "--hold"}
        )
    ours = THROUGHPUT_JOBS / (time.monotonic() - began)
    client.cancel_processes(f"thr-{run}-*")
    client.remove_processes(f"thr-{run}-*")
    began = time.monotonic()
    ids = []
    for _ in range(THROUGHPUT_JOBS):
        ids.append(
            subprocess.run(
                [
                    "sbatch",
                    "--parsable",
                    "--hold",
                    f"--output={folder}/plain-%j.out",
                    "--wrap",
                    "true",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
    plain = THROUGHPUT_JOBS / (time.monotonic() - began)
    subprocess.run(["scancel", *ids], check=True)
    return {"ours": ours, "plain": plain}


def emit(figure: str, ours: float, plain: float, unit: str, bigger_better: bool):
    ratio = ours / plain if bigger_better else plain / ours
    print(
        json.dumps(
            {
                "figure": figure,
                "ours": round(ours, 3),
                "plain": round(plain, 3),
                "ratio": round(ratio, 2),
                "unit": unit,
            }
        ),
        flush=True,
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs (default 3)")
    parser.add_argument(
        "--jobs", type=int, default=8, help="latency samples per run (default 8)"
    )
    parser.add_argument(
        "--plain-interval",
        type=float,
        default=0.25,
        help="the plain loop's squeue interval in seconds (default 0.25, the rate of our fast polling)",
    )
    arguments = parser.parse_args(argv)
    problem = cluster_problem()
    if problem is not None:
        print(
            f"slurm_bench: needs a Slurm cluster ({problem}); "
            "start the test cluster with `make slurm-up` (as root)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    with tempfile.TemporaryDirectory(prefix="papa-slurm-bench-") as folder:
        os.chmod(folder, 0o755)
        port = free_port()
        kernel = start_kernel(port, folder)
        results = {"latency": [], "throughput": []}
        try:
            with papa.Papa(port, connection_timeout=DEADLINE_SECONDS) as client:
                for run in range(arguments.repeat):
                    print(f"run {run + 1}/{arguments.repeat}", file=sys.stderr)
                    results["latency"].append(
                        latency_run(
                            client,
                            folder,
                            arguments.jobs,
                            arguments.plain_interval,
                            run,
                        )
                    )
                    results["throughput"].append(throughput_run(client, folder, run))
        finally:
            kernel.terminate()
            kernel.wait(timeout=30)

    def median(kind, side, index=None):
        values = [
            run[side] if index is None else run[side][index] for run in results[kind]
        ]
        return statistics.median(values)

    for index, figure in enumerate(("submit_to_running_s", "submit_to_completed_s")):
        emit(
            figure,
            median("latency", "ours", index),
            median("latency", "plain", index),
            "s",
            False,
        )
    emit(
        "submit_200_jobs_per_s",
        median("throughput", "ours"),
        median("throughput", "plain"),
        "jobs/s",
        True,
    )


if __name__ == "__main__":
    main()
