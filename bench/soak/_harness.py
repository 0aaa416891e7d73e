"""What the soaks of bench/soak share: a server process killed and restarted,
workers told to stop, waits with a deadline, and the summary table."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _servers import wait_until  # noqa: E402

__all__ = ["ServerProcess", "print_table", "stop_workers", "wait_until"]


class ServerProcess:
    """A server run again and again with the same command and log file.

    Subclasses say when it is ready (:meth:`ready`, whose true value
    :meth:`start` returns) and may build the command at each start.
    """

    def __init__(
        self,
        command: Sequence[str],
        environment: dict,
        log_path: Path,
        deadline: float,
    ):
        self._command = list(command)
        self.environment = environment
        self.log_path = log_path
        self.deadline = deadline  # seconds to start, or to stop after SIGTERM
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return self._command

    def ready(self) -> object:  # pragma: no cover - interface
        raise NotImplementedError

    def start(self) -> object:
        """Start it; return :meth:`ready`'s answer once it is ready."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                env=self.environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def ready():
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.command()[:3]} exited with {self.process.returncode}"
                )
            return self.ready()

        return wait_until(ready, self.deadline, f"{self.command()[:3]} ready")

    def kill(self) -> None:
        """SIGKILL, and reap it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """SIGTERM, and wait until it exited."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(self.deadline)


def stop_workers(
    stop_path: Path, processes: Sequence[subprocess.Popen], deadline: float
) -> None:
    """Tell worker processes to end (the stop file), kill those that do not."""
    stop_path.touch()
    for process in processes:
        try:
            process.wait(deadline)
        except subprocess.TimeoutExpired:
            process.kill()


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain-text table on stdout (the JSON figures follow it)."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [
        max([len(header), *(len(row[index]) for row in cells)])
        for index, header in enumerate(headers)
    ]
    rule = "  ".join("-" * width for width in widths)
    print(rule)
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print(rule)
    for row in cells:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    print(rule)
