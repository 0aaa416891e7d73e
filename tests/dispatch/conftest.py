"""Fixtures for the dispatch tests: zeo servers (in a thread or as a runzeo
process), and a runner for the DoJobber comparison driver."""

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import PYTHON, free_port, peer_env, require_peer

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "compare_driver.py"
# Generous: a cold interpreter importing ZODB on a loaded 2-core CI machine.
START_TIMEOUT = 60
RUN_TIMEOUT = 120


def wait_until(condition, timeout=START_TIMEOUT, interval=0.02, message="condition"):
    """Poll *condition* (for things no event announces, like another
    process's port); fail after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def run_driver(engine, graph, options=None):
    """Run compare_driver.py on *engine* ('ours' or 'peer'): (report, stderr lines).

    DoJobber's import-time notices about missing graphviz/ImageMagick
    (lines starting with ``**``) are dropped: they are not engine output.
    """
    env = None
    if engine == "peer":
        env = peer_env(require_peer("dojobber"))
    completed = subprocess.run(
        [PYTHON, str(DRIVER), engine, graph, json.dumps(options or {})],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=env,
        cwd=HERE,
    )
    assert completed.returncode == 0, completed.stderr
    lines = [
        line for line in completed.stderr.splitlines() if not line.startswith("** ")
    ]
    return json.loads(completed.stdout), lines


@pytest.fixture
def zeo_database(tmp_path):
    """A ZODB DB on our zeo server (in a thread) with a FileStorage in tmp_path."""
    import zeo

    address, stop = zeo.server(path=str(tmp_path / "Data.fs"))
    database = zeo.DB(address)
    database.address = address
    try:
        yield database
    finally:
        database.close()
        stop()


class RunzeoProcess:
    """A real ``python -m zeo.runzeo`` process serving a FileStorage."""

    def __init__(self, directory):
        self.port = free_port()
        self.address = ("127.0.0.1", self.port)
        self.data_path = directory / "Data.fs"
        address_file = directory / "address"
        self.output_path = directory / "runzeo.out"
        with open(self.output_path, "wb") as output:
            self.process = subprocess.Popen(
                [PYTHON, "-m", "zeo.runzeo", "-a", f"127.0.0.1:{self.port}"]
                + ["-f", str(self.data_path), "--address-file", str(address_file)],
                stdout=output,
                stderr=subprocess.STDOUT,
            )

        def listening():
            if self.process.poll() is not None:
                pytest.fail(
                    f"runzeo exited with {self.process.returncode}: "
                    + self.output_path.read_text(errors="replace")
                )
            return address_file.exists()

        wait_until(listening, message="runzeo to listen")

    @property
    def address_text(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(START_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def runzeo(tmp_path):
    server = RunzeoProcess(tmp_path)
    try:
        yield server
    finally:
        server.stop()
