"""A real ``runzeo`` process (ours, or real ZEO 6.2's) started from the text
of its configuration, as an operator would start it."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from .network import Address, can_connect
from .peers import PYTHON, our_env, peer_env
from .polling import wait_until

#: Generous: a cold interpreter importing ZODB on a loaded 2-core machine.
START_TIMEOUT = 60.0
#: How long a SIGTERM may take to close the storages before SIGKILL.
STOP_TIMEOUT = 60.0
#: How long the kernel may take to reap a killed process.
REAP_TIMEOUT = 30.0


class RunzeoProcess:
    """``runzeo -C <config>`` in a subprocess serving at *address*.

    *config_text* must name *address*.  With *peer* (the folder of real ZEO
    from ``.peers/zeo``) real ZEO's ``runzeo`` runs instead of ours.  Its
    stdout and stderr go to *output_name* in *directory* (appended, so that a
    restart keeps the earlier output).  ``start()`` again after ``stop()``
    serves on the same address.
    """

    def __init__(
        self,
        directory: Path,
        config_text: str,
        address: Address,
        *,
        peer: Path | None = None,
        log_path: Path | None = None,
        data_path: Path | None = None,
        extra_args: Sequence[str] = (),
        config_name: str = "zeo.conf",
        output_name: str = "runzeo.out",
        start_timeout: float = START_TIMEOUT,
        stop_timeout: float = STOP_TIMEOUT,
    ) -> None:
        self.directory = Path(directory)
        self.config_text = config_text
        self.address = address
        self.peer = peer
        self.data_path = data_path
        self.extra_args = list(extra_args)
        self.config_path = self.directory / config_name
        self.output_path = self.directory / output_name
        # Without an <eventlog> of its own, runzeo logs to stderr.
        self.log_path = log_path or self.output_path
        self.address_file = self.output_path.with_suffix(".address")
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        if isinstance(self.address, str):
            raise AttributeError(f"a Unix socket has no port: {self.address}")
        return self.address[1]

    @property
    def address_text(self) -> str:
        """The address as runzeo's ``-a`` and dispatch's ``--zeo`` take it."""
        if isinstance(self.address, str):
            return self.address
        return f"{self.address[0]}:{self.address[1]}"

    def command(self) -> list[str]:
        if self.peer is not None:
            runzeo = str(self.peer / "bin" / "runzeo")
            return [PYTHON, runzeo, "-C", str(self.config_path), *self.extra_args]
        return [
            *(PYTHON, "-m", "zeo.runzeo", "-C", str(self.config_path)),
            *("--address-file", str(self.address_file)),
            *self.extra_args,
        ]

    def start(self) -> RunzeoProcess:
        """Start the process and return once it serves; fail the test (with
        its output) when it exits or does not serve in time."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text)
        self.address_file.unlink(missing_ok=True)
        environment = our_env() if self.peer is None else peer_env(self.peer)
        with open(self.output_path, "ab") as output:
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env=environment,
            )
        try:
            wait_until(
                self._serving,
                self.start_timeout,
                message=f"runzeo to serve on {self.address_text}",
            )
        except pytest.fail.Exception as failure:
            self.kill()
            pytest.fail(f"{failure.msg}; its output:\n{self.log_tail()}")
        return self

    def _serving(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(
                f"runzeo exited with {self.process.returncode} while starting; "
                f"config:\n{self.config_text}\noutput:\n{self.log_tail()}"
            )
        if self.peer is None:
            # Ours writes the file once it listens: no probe connection then
            # shows in its log or its connection counts.
            return self.address_file.exists()
        # Real ZEO writes no such file: it serves once it accepts (with TLS
        # the greeting only comes after a handshake, so do not wait for it).
        return can_connect(self.address)

    def is_alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int | None:
        """Send *sig*, then SIGKILL after ``stop_timeout``; return the exit
        status (None if it was never started)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(REAP_TIMEOUT)
        return self.process.returncode

    def kill(self) -> int | None:
        return self.stop(signal.SIGKILL)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, characters: int = 6000) -> str:
        """The end of the log and of the output, to explain a failure."""
        text = self.log_text()
        if self.log_path != self.output_path:
            try:
                text = self.output_path.read_text(errors="replace") + text
            except FileNotFoundError:
                pass
        return text[-characters:] or "<nothing>"

    def wait_for_log(self, text: str, timeout: float | None = None) -> bool:
        """Wait until *text* is in the log (a server notices no event for it)."""
        return wait_until(
            lambda: text in self.log_text(),
            self.start_timeout if timeout is None else timeout,
            message=f"log line {text!r}",
        )
