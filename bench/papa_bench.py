"""Our papa kernel against real papa 1.0.6, side by side in one run.

Each implementation is measured with its own client against its own kernel
(ours: ``python -m papa``; real: ``.peers/papa``, imported only in
subprocesses because both packages are named ``papa``), on free 127.0.0.1
ports:

- ``make_process_ms``: round trip of ``make_process`` (a ``/bin/sleep``);
- ``spawn_to_exit_code_ms``: ``make_process(/bin/true, watch_immediately)``
  until the watcher has the exit code;
- ``capture_mb_per_s``: a child writes 50 MB to stdout; MB/s received by a
  watcher (bufsize large enough that neither kernel drops anything);
- ``set_get_ms``: one ``set`` plus one ``get``, per pair;
- ``threads_100_idle`` / ``kb_per_idle_child``: kernel threads and RSS growth
  with 100 idle captured children.

One JSON line per figure on stdout::

    {"figure": "set_get_ms", "ours": 0.05, "papa": 0.12, "ratio": 2.4, "unit": "ms"}

``--state-dir`` runs our kernel with a state directory (values journaled
before each reply, children started through their waiting parent), to
measure what surviving a SIGKILL costs.

``ratio`` > 1 means ours is better (papa/ours for times, threads and memory;
ours/papa for MB/s).  Figures are medians over ``--repeat`` runs; the two
implementations alternate which goes first.  Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _kernels import start_listening_kernel
from _servers import free_port

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT / ".peers" / "papa"
OURS, REAL = "ours", "papa"

# Figures, their unit and whether bigger is better.
FIGURES = {
    "make_process_ms": ("ms", False),
    "spawn_to_exit_code_ms": ("ms", False),
    "capture_mb_per_s": ("MB/s", True),
    "set_get_ms": ("ms", False),
    "threads_100_idle": ("threads", False),
    "kb_per_idle_child": ("KB", False),
}

WORKER = r"""
import json, os, select, statistics, sys, time
import papa

port = int(sys.argv[1])
kernel_pid = int(sys.argv[2])
megabytes = int(sys.argv[3])
results = {}


def status(field):
    with open(f"/proc/{kernel_pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])


def drain(watcher):
    received = 0
    code = None
    while True:
        reply = watcher.read()
        if not reply:
            return received, code
        received += sum(len(item.data) for item in reply[0])
        for item in reply[2]:
            code = item.data


p = papa.Papa(port, connection_timeout=30)

samples = []
for i in range(2000):
    start = time.perf_counter()
    p.set("k", "value %d" % i)
    p.get("k")
    samples.append(time.perf_counter() - start)
p.set("k")
results["set_get_ms"] = statistics.median(samples) * 1000

samples = []
for i in range(40):
    start = time.perf_counter()
    p.make_process("mp%d" % i, "/bin/sleep", args="0")
    samples.append(time.perf_counter() - start)
results["make_process_ms"] = statistics.median(samples) * 1000
time.sleep(0.5)
p.remove_processes("mp*")

samples = []
for i in range(20):
    start = time.perf_counter()
    watcher = p.make_process("sx%d" % i, "/bin/true", watch_immediately=True)
    received, code = drain(watcher)
    assert code == 0, code
    samples.append(time.perf_counter() - start)
results["spawn_to_exit_code_ms"] = statistics.median(samples) * 1000

# One line: real papa's client turns newlines in arguments into spaces.
writer = "import os; block = b'x' * 65536; [os.write(1, block) for _ in range(%d * 16)]" % megabytes
start = time.perf_counter()
watcher = p.make_process(
    "writer", sys.executable, args=["-c", writer], bufsize="%dm" % (megabytes * 2),
    watch_immediately=True,
)
received, code = drain(watcher)
elapsed = time.perf_counter() - start
assert code == 0, code
results["capture_bytes"] = received
results["capture_mb_per_s"] = received / elapsed / 1e6

rss_before = status("VmRSS")
for i in range(100):
    p.make_process("idle%03d" % i, "/bin/sleep", args="300")
time.sleep(1.0)
results["threads_100_idle"] = status("Threads")
results["kb_per_idle_child"] = (status("VmRSS") - rss_before) / 100
pids = [info["pid"] for info in p.list_processes("idle*").values()]
for pid in pids:
    os.kill(pid, 9)
p.close()
print(json.dumps(results))
"""


def environment(implementation: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PEER if implementation == REAL else ROOT / "src")
    return env


def start_kernel(
    implementation: str, port: int, folder: str, state_dir: bool = False
) -> subprocess.Popen:
    if implementation == REAL:
        command = [
            sys.executable,
            "-c",
            "from papa.server import main; main()",
            "-p",
            str(port),
        ]
    else:
        command = [sys.executable, "-m", "papa", "-p", str(port)]
        if state_dir:
            command += ["--state-dir", os.path.join(folder, "state")]
    return start_listening_kernel(
        command, port, environment(implementation), folder, f"{implementation} kernel"
    )


def measure(implementation: str, megabytes: int, state_dir: bool = False) -> dict:
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        kernel = start_kernel(implementation, port, folder, state_dir)
        try:
            worker = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    WORKER,
                    str(port),
                    str(kernel.pid),
                    str(megabytes),
                ],
                env=environment(implementation),
                cwd=folder,
                capture_output=True,
                text=True,
                timeout=900,
            )
        finally:
            kernel.send_signal(signal.SIGTERM)
            try:
                kernel.wait(30)
            except subprocess.TimeoutExpired:
                kernel.kill()
                kernel.wait()
    if worker.returncode:
        raise SystemExit(f"{implementation} worker failed:\n{worker.stderr}")
    return json.loads(worker.stdout)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per implementation")
    parser.add_argument(
        "--megabytes", type=int, default=50, help="output of the capture test"
    )
    parser.add_argument(
        "--state-dir",
        action="store_true",
        help="run our kernel with a state directory (real papa has none)",
    )
    arguments = parser.parse_args(argv)
    if not (PEER / ".installed").exists():
        raise SystemExit(f"real papa is not installed in {PEER} (run `make peers`)")
    runs: dict[str, list[dict]] = {OURS: [], REAL: []}
    for repeat in range(arguments.repeat):
        order = (OURS, REAL) if repeat % 2 == 0 else (REAL, OURS)
        for implementation in order:
            print(f"run {repeat + 1}: {implementation}", file=sys.stderr, flush=True)
            runs[implementation].append(
                measure(implementation, arguments.megabytes, arguments.state_dir)
            )
    for figure, (unit, bigger_is_better) in FIGURES.items():
        ours = statistics.median(run[figure] for run in runs[OURS])
        real = statistics.median(run[figure] for run in runs[REAL])
        if bigger_is_better:
            ratio = ours / real if real else None
        else:
            ratio = real / ours if ours else None
        line = {
            "figure": figure,
            "ours": round(ours, 4),
            "papa": round(real, 4),
            "ratio": None if ratio is None else round(ratio, 2),
            "unit": unit,
        }
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
