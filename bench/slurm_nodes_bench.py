"""Slurm through papa on a cluster of two nodes, and how fast a dead node is seen.

Starts the two-node test cluster of tests/support/slurm_nodes.py (its own
``slurm.conf`` through ``SLURM_CONF``; root and Slurm needed, else exit 2),
then in the same run:

- ``bench/slurm_bench.py``'s figures (submit to RUNNING and to COMPLETED,
  200 submits) against that cluster: papa against a plain ``sbatch`` +
  ``squeue`` loop, the jobs spread over both nodes by Slurm;
- ``node_fail_seen_s``: a job runs on a node, the node is killed (slurmd and
  the job's processes, SIGKILL); seconds until Slurm's ``squeue`` shows the
  job ``NODE_FAIL`` (plain) and until papa lists it ended (ours);
- ``squeue_ms``: one ``squeue`` of every job, the call a papa kernel makes
  per poll (≤ 4 a second while a job is pending or young, every 2 s after).

One JSON line per figure on stdout (as slurm_bench); progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

import slurm_bench  # noqa: E402
from _servers import free_port  # noqa: E402

import papa  # noqa: E402
from tests.support.slurm_nodes import NODES, TwoNodeCluster, why_not  # noqa: E402

DEADLINE_SECONDS = 120


def node_fail_run(cluster: TwoNodeCluster, client: papa.Papa, run: int):
    """(seconds until squeue shows NODE_FAIL, until papa lists the end)."""
    victim = NODES[run % len(NODES)]
    name = f"doomed-{run}"
    client.make_process(
        name,
        "/bin/sh",
        ["-c", "exec sleep 600"],
        slurm={"runtime": "20", "options": f"--nodelist={victim}"},
    )
    job = client.list_processes(name)[name]["slurm_job"]
    deadline = time.monotonic() + DEADLINE_SECONDS
    while client.list_processes(name)[name]["state"] != "RUNNING":
        assert time.monotonic() < deadline, "job never ran"
        time.sleep(0.05)
    killed = time.monotonic()
    cluster.kill_node(victim)
    plain = ours = None
    while plain is None or ours is None:
        assert time.monotonic() < deadline, "node failure never seen"
        if plain is None:
            state = cluster.tool(
                "squeue", "-h", "-t", "all", "-j", str(job), "-o", "%T"
            )
            if state.strip() == "NODE_FAIL":
                plain = time.monotonic() - killed
        if ours is None and "exit_code" in client.list_processes(name)[name]:
            ours = time.monotonic() - killed
        time.sleep(0.02)
    cluster.start_node(victim)
    return ours, plain


def squeue_ms(cluster: TwoNodeCluster, calls: int = 20) -> float:
    times = []
    for _ in range(calls):
        began = time.perf_counter()
        cluster.tool("squeue", "-h", "-t", "all", "-o", "%F|%i|%T|%r|%N")
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs (default 3)")
    parser.add_argument("--jobs", type=int, default=8, help="latency samples per run")
    arguments = parser.parse_args(argv)
    problem = why_not()
    if problem is not None:
        print(f"slurm_nodes_bench: {problem}", file=sys.stderr)
        raise SystemExit(2)
    with tempfile.TemporaryDirectory(prefix="slurm-nodes-bench-") as folder:
        cluster = TwoNodeCluster(Path(folder) / "cluster").start()
        os.environ["SLURM_CONF"] = str(cluster.conf)  # our tools and kernel
        try:
            slurm_bench.main(
                ["--repeat", str(arguments.repeat), "--jobs", str(arguments.jobs)]
            )
            state_dir = Path(folder) / "papa"
            state_dir.mkdir()
            os.chmod(folder, 0o755)
            port = free_port()
            kernel = slurm_bench.start_kernel(port, str(state_dir))
            try:
                with papa.Papa(port, connection_timeout=60) as client:
                    runs = []
                    for run in range(arguments.repeat):
                        print(f"node failure {run + 1}", file=sys.stderr)
                        runs.append(node_fail_run(cluster, client, run))
            finally:
                kernel.terminate()
                kernel.wait(timeout=30)
            ours = statistics.median(r[0] for r in runs)
            plain = statistics.median(r[1] for r in runs)
            slurm_bench.emit("node_fail_seen_s", ours, plain, "s", False)
            cost = squeue_ms(cluster)
            print(json.dumps({"figure": "squeue_ms", "value": round(cost, 1)}))
        finally:
            subprocess.run(["scancel", "--full", "-u", "root"], env=cluster.env)
            cluster.stop()


if __name__ == "__main__":
    main()
