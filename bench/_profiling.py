"""py-spy recordings of our server and clients during ``zeo_bench.py --profile``.

py-spy (``.venv/bin/pip install py-spy``; not a project dependency) samples a
running process from outside, so the code measured is the code that runs in
the benchmark, not an instrumented copy.  Recordings are written in py-spy's
``raw`` (collapsed stacks) format, which speedscope and flamegraph.pl read,
and each gets a ``.txt`` summary of the functions where the samples fall
(self) and the functions under which they fall (inclusive).

``python bench/_profiling.py FILE.raw...`` prints the summary of recordings.
"""

import collections
import shutil
import signal
import subprocess
import sys
from pathlib import Path

SAMPLES_PER_SECOND = 250
SUMMARY_LINES = 25


def find_py_spy() -> str:
    """Path of py-spy, next to our Python first, then on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return str(beside)
    found = shutil.which("py-spy")
    if found is None:
        sys.exit("py-spy not found: run `.venv/bin/pip install py-spy`")
    return found


class Recording:
    """One py-spy process attached to one target process."""

    def __init__(self, pid: int, output: Path):
        self.output = output
        self.process = subprocess.Popen(
            [
                find_py_spy(),
                "record",
                "--pid",
                str(pid),
                "--output",
                str(output),
                "--format",
                "raw",
                "--rate",
                str(SAMPLES_PER_SECOND),
                "--nonblocking",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # py-spy says "Sampling process ..." (on stdout) once it is attached:
        # only then may the measured work start.
        line = self.process.stdout.readline()
        if "Sampling" not in line:
            raise RuntimeError(f"py-spy could not attach to {pid}: {line.strip()}")

    def finish(self) -> None:
        """Stop sampling (if the target still runs), write the file and its summary."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
        if self.output.exists():
            summary = summarise(self.output.read_text())
            self.output.with_suffix(".txt").write_text(summary)


class Profiler:
    """Recordings for one benchmark run, all written into ``directory``."""

    def __init__(self, directory: Path):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.servers = []
        self.counts = collections.Counter()

    def record_server(self, pid: int, column: str) -> None:
        """Record the server of ``column`` for the whole run."""
        self.servers.append(Recording(pid, self.directory / f"server-{column}.raw"))

    def attach(self, pid: int, task: str, clients: int) -> Recording:
        name = f"client-{task}-x{clients}"
        self.counts[name] += 1
        return Recording(pid, self.directory / f"{name}-{self.counts[name]}.raw")

    def finish(self) -> None:
        for recording in self.servers:
            recording.finish()


def function_of(frame: str) -> str:
    """'name (file.py:12)' -> 'name (file.py)': line numbers split functions."""
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rstrip(")")
    return f"{name} ({file})" if file else name


def summarise(collapsed: str) -> str:
    """Top functions by self and by inclusive samples of a raw recording."""
    own = collections.Counter()
    inclusive = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        functions = [function_of(frame) for frame in stack.split(";")]
        own[functions[-1]] += samples
        for function in set(functions):
            inclusive[function] += samples
    if not total:
        return "no samples\n"
    lines = [f"{total} samples", "", "self:"]
    for function, samples in own.most_common(SUMMARY_LINES):
        lines.append(f"  {100.0 * samples / total:5.1f}%  {function}")
    lines += ["", "inclusive:"]
    for function, samples in inclusive.most_common(SUMMARY_LINES):
        lines.append(f"  {100.0 * samples / total:5.1f}%  {function}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    for path in sys.argv[1:]:
        print(f"== {path}")
        print(summarise(Path(path).read_text()))
