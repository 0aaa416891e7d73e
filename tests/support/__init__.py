"""Helpers shared by every test package: polling with a deadline, free ports,
the reference peers, and real runzeo and papa kernel processes.

Each conftest binds these to its suite's own timeouts; test modules keep
importing them from their conftest.
"""

from .kernels import KERNEL_TIMEOUT, KernelProcess, RawSession, kill_all, pid_alive
from .network import can_connect, free_port, read_greeting
from .peers import PEERS, PYTHON, ROOT, SRC, our_env, peer_env, require_peer
from .polling import wait_until
from .runzeo import RunzeoProcess
from .soaks import run_soak

__all__ = [
    "KERNEL_TIMEOUT",
    "PEERS",
    "PYTHON",
    "ROOT",
    "SRC",
    "KernelProcess",
    "RawSession",
    "RunzeoProcess",
    "can_connect",
    "free_port",
    "kill_all",
    "our_env",
    "peer_env",
    "pid_alive",
    "read_greeting",
    "require_peer",
    "run_soak",
    "wait_until",
]
