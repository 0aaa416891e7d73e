"""Start a papa kernel process for a benchmark and wait until it listens.

Shared by ``papa_bench.py`` (ours and real papa side by side) and
``slurm_bench.py``; the port comes from :func:`_servers.free_port`.
"""

import socket
import subprocess
import time

# A kernel on a loaded 2-core machine imports in well under this.
KERNEL_START_DEADLINE = 30.0


def start_listening_kernel(
    command: list, port: int, environment: dict, folder: str, what: str
) -> subprocess.Popen:
    """Run *command* (a kernel listening on 127.0.0.1:*port*) in *folder*;
    return it once it accepts connections, or exit naming *what*."""
    kernel = subprocess.Popen(
        command,
        env=environment,
        cwd=folder,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + KERNEL_START_DEADLINE
    while time.monotonic() < deadline:
        if kernel.poll() is not None:
            break
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return kernel
        time.sleep(0.02)
    kernel.kill()
    kernel.wait()
    raise SystemExit(f"{what} did not start")
