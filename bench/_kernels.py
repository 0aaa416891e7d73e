"""Start a papa kernel process for a benchmark and wait until it listens.

Shared by ``papa_bench.py`` (ours and real papa side by side) and
``slurm_bench.py``; the port comes from :func:`_servers.free_port`.
"""

import subprocess

from _servers import can_connect, wait_until

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

    def listening() -> bool:
        if kernel.poll() is not None:
            raise RuntimeError(f"exited with {kernel.returncode}")
        return can_connect(port)

    try:
        wait_until(listening, KERNEL_START_DEADLINE, f"{what} listening")
    except (RuntimeError, TimeoutError) as error:
        kernel.kill()
        kernel.wait()
        raise SystemExit(f"{what} did not start: {error}") from None
    return kernel
