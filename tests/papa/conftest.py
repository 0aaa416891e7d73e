"""Fixtures for papa: real kernels on free ports and temp Unix sockets.

Every kernel started here is stopped in the fixture's finaliser, and every
process it reported is killed and checked gone, so no test leaks children.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from tests.conftest import PYTHON, ROOT, require_peer
from tests.support import (
    KERNEL_TIMEOUT,
    SRC,
    KernelProcess,
    RawSession,
    can_connect,
    kill_all,
    pid_alive,
    wait_until,
)
from tests.support.slurm import SlurmKernel, require_cluster

__all__ = [
    "PYTHON",
    "ROOT",
    "SRC",
    "KernelProcess",
    "RawSession",
    "can_connect",
    "kill_all",
    "pid_alive",
    "read_all",
    "wait_for",
]

DEADLINE_SECONDS = KERNEL_TIMEOUT

#: ``wait_for(condition, timeout=DEADLINE_SECONDS, message=...)``.
wait_for = functools.partial(wait_until, timeout=DEADLINE_SECONDS)


def read_all(watcher, limit=DEADLINE_SECONDS):
    """Read batches until the watch ends; return out bytes, err bytes, exit codes."""
    out, err, closed = [], [], {}

    def ended():
        # Each read blocks until the kernel sends something: no pause needed.
        if watcher:
            batch = watcher.read()
            out.extend(item.data for item in batch[0])
            err.extend(item.data for item in batch[1])
            closed.update((item.name, item.data) for item in batch[2])
        return not watcher

    wait_until(ended, limit, interval=0, maximum_interval=0, message="the watch to end")
    return b"".join(out), b"".join(err), closed


@pytest.fixture
def papa_peer() -> Path:
    """Real papa 1.0.6, importable only in subprocesses run with peer_env()."""
    return require_peer("papa")


@pytest.fixture
def kernel_factory(tmp_path):
    """Start kernels; all are stopped, and their children killed, at the end."""
    started: list[KernelProcess] = []

    def start(**options) -> KernelProcess:
        kernel = KernelProcess(tmp_path, **options).start()
        started.append(kernel)
        return kernel

    yield start
    for kernel in started:
        kernel.stop()


@pytest.fixture
def kernel(kernel_factory) -> KernelProcess:
    """Our kernel on a free TCP port of 127.0.0.1."""
    return kernel_factory()


@pytest.fixture
def unix_kernel(kernel_factory) -> KernelProcess:
    """Our kernel on a Unix socket in the test's temp folder."""
    return kernel_factory(unix=True)


@pytest.fixture
def client(kernel):
    """Our client library connected to our kernel."""
    import papa

    connection = papa.Papa(kernel.port_or_path, connection_timeout=DEADLINE_SECONDS)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def cluster():
    """The real one-node Slurm test cluster (skipped without it)."""
    require_cluster()


@pytest.fixture
def slurm_kernels(cluster, tmp_path):
    """Start kernels with a state dir; their Slurm jobs are cancelled at the end."""
    started = []

    def start(config=None, state_dir=None):
        extra = ["-C", str(config)] if config else []
        kernel = SlurmKernel(
            tmp_path, state_dir=state_dir or tmp_path / "state", extra=extra
        ).start()
        started.append(kernel)
        return kernel

    yield start
    for kernel in started:
        kernel.stop()
