"""dispatch.jobs against DoJobber 0.6.3 on a 1,000-job graph, in one run.

The graph: 100 layers of 10 trivial jobs (a DAG of width 10); each job
depends on two jobs of the layer below, and one DummyJob on top depends on
the last layer.  Two workloads:

- ``pass``: every Check passes at once (one Check per job);
- ``run``: every first Check fails, Run marks the job done, the recheck
  passes (Check, Run, Check per job).

Engines, each measured in a fresh process so that imports and caches are
equal: ``dojobber`` (real DoJobber 0.6.3 from ``.peers/dojobber``),
``ours_memory`` (dispatch.jobs, no database), ``ours_zeo`` (dispatch.jobs
recording every attempt in a real ``runzeo`` process on a FileStorage in a
temporary directory: two commits per attempt).  The time measured is
``configure()`` plus ``checknrun()``.

One JSON line per figure on stdout::

    {"figure": "jobs_1000_pass", "dojobber": 2.1, "ours_memory": 0.02,
     "ours_zeo": 1.9, "ratio_memory": 105.0, "ratio_zeo": 1.1, "unit": "s"}

Values are medians of ``--repeat`` runs (engines alternate order in each
repeat); ``ratio_*`` is DoJobber's time over ours, so > 1 means ours is
faster.  Progress goes to stderr.  Run: ``.venv/bin/python bench/jobs_bench.py``.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _servers import start_our_runzeo

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT / ".peers" / "dojobber"
ENGINES = ("dojobber", "ours_memory", "ours_zeo")
WIDTH = 10
# A run that has not finished after this long is hung.
DEADLINE = 900


def log(message):
    print(message, file=sys.stderr, flush=True)


# -- the worker: one measurement in this process -----------------------------------


def build_graph(module, jobs, workload):
    """The layered DAG on *module*'s Job classes; returns the root class."""
    done = set()

    def check(self):
        name = type(self).__name__
        if workload == "run" and name not in done:
            raise RuntimeError("not done")

    def run(self):
        done.add(type(self).__name__)

    layers = []
    below = []
    for layer in range(jobs // WIDTH):
        current = []
        for column in range(WIDTH):
            deps = []
            if below:
                deps = [below[column], below[(column + 1) % WIDTH]]
            current.append(
                type(
                    f"J{layer}_{column}",
                    (module.Job,),
                    {"DEPS": deps, "Check": check, "Run": run},
                )
            )
        layers.append(current)
        below = current
    return type("Everything", (module.DummyJob,), {"DEPS": below})


def worker(engine, workload, jobs, address, run_name):
    if engine == "dojobber":
        import dojobber as module
    else:
        import dispatch.jobs as module
    database = None
    options = {}
    if engine == "ours_zeo":
        import zeo

        host, port = address.rsplit(":", 1)
        database = zeo.DB((host, int(port)))
        options = {"db": database, "run_name": run_name}
    root = build_graph(module, jobs, workload)
    began = time.perf_counter()
    dojob = module.DoJobber(**options)
    dojob.configure(root, default_retry_delay=0)
    dojob.checknrun()
    elapsed = time.perf_counter() - began
    if not dojob.success():
        raise SystemExit(f"{engine}: the benchmark graph did not succeed")
    if database is not None:
        database.close()
    print(json.dumps({"seconds": elapsed, "jobs": len(dojob.nodestatus)}))


# -- the driver ----------------------------------------------------------------------


def measure(engine, workload, jobs, address, run_name):
    environment = dict(os.environ)
    if engine == "dojobber":
        environment["PYTHONPATH"] = str(PEER)
    completed = subprocess.run(
        [sys.executable, __file__, "--worker", engine, workload, str(jobs)]
        + [address or "-", run_name],
        capture_output=True,
        text=True,
        env=environment,
        timeout=DEADLINE,
    )
    if completed.returncode != 0:
        raise SystemExit(f"{engine} {workload} failed:\n{completed.stderr[-2000:]}")
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])["seconds"]


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure")
    parser.add_argument("--jobs", type=int, default=1000, help="jobs in the graph")
    parser.add_argument("--workload", choices=("pass", "run", "both"), default="both")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    options = parse_arguments(argv)
    if options.worker:
        engine, workload, jobs, address, run_name = options.worker
        worker(engine, workload, int(jobs), address, run_name)
        return 0
    if not (PEER / ".installed").exists():
        raise SystemExit(f"DoJobber peer missing in {PEER}: run `make peers` first")
    workloads = ("pass", "run") if options.workload == "both" else (options.workload,)
    with tempfile.TemporaryDirectory(prefix="jobs-bench-") as directory:
        server, address = start_our_runzeo(
            Path(directory), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            for workload in workloads:
                times = {engine: [] for engine in ENGINES}
                for repeat in range(options.repeat):
                    order = ENGINES if repeat % 2 == 0 else ENGINES[::-1]
                    for engine in order:
                        run_name = f"bench-{workload}-{repeat}"
                        seconds = measure(
                            engine, workload, options.jobs, address, run_name
                        )
                        times[engine].append(seconds)
                        log(f"{workload} repeat {repeat} {engine}: {seconds:.3f} s")
                medians = {
                    engine: statistics.median(times[engine]) for engine in ENGINES
                }
                line = {"figure": f"jobs_{options.jobs}_{workload}", **medians}
                line["ratio_memory"] = round(
                    medians["dojobber"] / medians["ours_memory"], 2
                )
                line["ratio_zeo"] = round(medians["dojobber"] / medians["ours_zeo"], 2)
                line["unit"] = "s"
                line["repeat"] = options.repeat
                print(json.dumps(line), flush=True)
        finally:
            server.terminate()
            server.wait(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
