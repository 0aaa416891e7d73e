"""A local child that outlives its kernel: output, exit code and all.

With a state directory every local child is started through a tiny
*waiting parent* (:mod:`papa.waiter`) instead of directly, so a kernel
killed with SIGKILL and restarted loses neither the exit code nor, with
``spill``, a byte of output:

- the waiter runs in a session of its own, starts the program (its own
  process group: the pid papa reports, signals and ``cancel`` reach the
  real program), waits for it and writes its exit code to
  ``children/NAME.ID.exit``;
- with ``spill`` the program writes stdout and stderr straight into
  ``children/NAME.ID.out`` and ``.err``; the kernel reads them as they grow,
  at most ``bufsize`` unacknowledged bytes at a time (nothing is ever
  dropped, :mod:`papa.tail`), and journals how far watchers acknowledged
  before the next batch goes out, so the next kernel goes on from there;
- without ``spill`` output still goes through pipes, as without a state
  directory: a restarted kernel cannot get those pipes back, so an adopted
  child's later output is lost (and it gets EPIPE), but its exit code is
  still the real one.

Why this design rather than the others weighed (a long-lived *keeper*
process holding every pipe and passing the fds to the kernel with
SCM_RIGHTS; a subreaper with ``pidfd_getfd``): bytes the kernel had read
from a pipe but no watcher had acknowledged die with the kernel whatever
holds the pipe, so a lossless design needs the output on disk anyway, and
once it is there, the one thing left is an exit status, which a waiting
parent per child gives with no protocol, no shared process whose death
loses everything, and no ptrace permission.  The cost is one Python
start-up per spawn (milliseconds), paid only with a state directory.
Delivery across a restart is at least once: output a watcher received
but had not acknowledged when the kernel died is sent again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable

from .errors import Error
from .local import LocalProcess, spawn_error, substitute
from .output import STDERR, STDOUT, OutputRing
from .process import UNKNOWN_EXIT_CODE, ProcessSpec, stop_watching_pidfd
from .state import process_start_ticks
from .tail import FileTail

log = logging.getLogger(__name__)

WAITER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "waiter.py")
WAITER_TIMEOUT_SECONDS = 30.0
_EXCEPTIONS: dict[str, type[BaseException]] = {
    "FileNotFoundError": FileNotFoundError,
    "PermissionError": PermissionError,
    "NotADirectoryError": NotADirectoryError,
    "SubprocessError": subprocess.SubprocessError,
}


def _ask(waiter: subprocess.Popen, request: bytes) -> bytes:
    """Send the request; the waiter's one-line answer (it then goes on waiting)."""
    assert waiter.stdin is not None and waiter.stdout is not None
    with waiter.stdin:
        waiter.stdin.write(request)
    answer = b""
    deadline = time.monotonic() + WAITER_TIMEOUT_SECONDS
    with waiter.stdout:
        while not answer.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([waiter.stdout], [], [], max(remaining, 0))
            if not ready:
                waiter.kill()
                raise subprocess.TimeoutExpired(waiter.args, WAITER_TIMEOUT_SECONDS)
            data = os.read(waiter.stdout.fileno(), 4096)
            if not data:
                break
            answer += data
    return answer


class WaitedProcess(LocalProcess):
    """A local child started through its waiting parent (state directory)."""

    kind = "local"
    kept_when_ended = True

    def __init__(self, spec: ProcessSpec, children_dir: str):
        super().__init__(spec)
        self.stem = os.path.join(children_dir, f"{spec.name}.{time.time_ns()}")
        self.exit_path = self.stem + ".exit"
        self.files: dict[str, str] = {}  # kind -> output file (spill)
        self.acknowledged: dict[str, int] = {}
        self.waiter_pid = 0
        self.waiter_ticks: int | None = None
        self.on_progress: Callable[[], None] | None = None
        self._tail: FileTail | None = None
        self._ended_code: int | None = None

    # -- starting ----------------------------------------------------------------
    def start(self, sockets: dict) -> None:
        spec = self.spec
        argv, fds, clones = substitute(spec.args, sockets, spec.name)
        pass_fds = {
            managed.socket.fileno() for managed in sockets.values() if managed.socket
        }
        pass_fds.update(fds)
        sinks, pipes = self._open_sinks()
        request = {
            "argv": argv,
            "shell": spec.shell,
            "cwd": spec.working_dir,
            "env": spec.env,
            "uid": spec.uid,
            "gid": spec.gid,
            "extra_groups": (
                os.getgrouplist(spec.user_name, spec.gid)
                if spec.uid is not None and spec.user_name is not None
                else None
            ),
            "rlimits": spec.rlimits,
            "pass_fds": sorted(pass_fds),
            "stdout": sinks.get(STDOUT),
            "stderr": "stdout" if spec.stderr == "stdout" else sinks.get(STDERR),
            "exit_path": self.exit_path,
        }
        own = {fd for fd in sinks.values() if isinstance(fd, int)}
        self.started = time.time()
        try:
            self._popen = subprocess.Popen(
                [sys.executable, "-I", "-S", WAITER],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                close_fds=True,
                pass_fds=sorted(pass_fds | own),
                start_new_session=True,
                env={},
            )
            answer = _ask(self._popen, json.dumps(request).encode())
        except (OSError, subprocess.SubprocessError) as exc:
            self._abandon(pipes)
            raise Error(f"Cannot start the waiting parent of {spec.name}: {exc}")
        finally:
            for fd in own:
                os.close(fd)
            for clone in clones:
                clone.close()
        try:
            reply = json.loads(answer)
        except ValueError:
            self._abandon(pipes)
            raise Error(f"The waiting parent of {spec.name} failed: {answer!r}")
        if "pid" not in reply:
            self._popen.wait()
            self._abandon(pipes)
            kind = _EXCEPTIONS.get(reply.get("error", ""), OSError)
            raise spawn_error(spec, kind(reply.get("message", "")))
        self.pid = reply["pid"]
        self.ticks = process_start_ticks(self.pid)
        self.waiter_pid = self._popen.pid
        self.waiter_ticks = process_start_ticks(self.waiter_pid)
        self.running = True
        self._begin(pipes)
        log.info("started %s (waiting parent %s)", self.line(), self.waiter_pid)

    def _open_sinks(self) -> tuple[dict[str, int], dict[str, int]]:
        """Write ends for the waiter, and the kernel's pipe read ends."""
        spec = self.spec
        kinds = [STDOUT] if spec.stdout else []
        if spec.stderr == "1":
            kinds.append(STDERR)
        sinks, pipes = {}, {}
        for kind in kinds:
            if spec.spill:
                path = f"{self.stem}.{kind}"
                sinks[kind] = os.open(
                    path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600
                )
                self.files[kind] = path
            else:
                pipes[kind], sinks[kind] = os.pipe()
        return sinks, pipes

    def _abandon(self, pipes: dict[str, int]) -> None:
        for fd in pipes.values():
            os.close(fd)
        self.forgotten()

    def _begin(self, pipes: dict[str, int]) -> None:
        """Capture output and watch for the end (a new child or an adopted one)."""
        self.output = OutputRing(self.spec.bufsize)
        self._loop = asyncio.get_running_loop()
        for kind, fd in pipes.items():
            self._streams[fd] = open(fd, "rb", buffering=0)  # noqa: SIM115
            self._watch_pipe(fd, kind)
        if self.files:
            self._tail = FileTail(self.output, self.acknowledged, self._progressed)
            for kind, path in self.files.items():
                self._tail.add(kind, kind, path)
        if self.running:
            self._watch_exit()
        else:
            self._maybe_finish()

    def _progressed(self) -> None:
        if self.on_progress is not None:
            self.on_progress()

    # -- the end -----------------------------------------------------------------
    def _watch_exit(self) -> None:
        assert self._loop is not None
        try:
            self._pidfd = os.pidfd_open(self.waiter_pid)
        except OSError:
            self._exit_poll = self._loop.call_later(0.05, self._poll_exit)
            return
        self._loop.add_reader(self._pidfd, self._poll_exit)

    def _poll_exit(self) -> None:
        if self._popen is not None:
            ended = self._popen.poll() is not None
        else:
            ended = process_start_ticks(self.waiter_pid) != self.waiter_ticks
        if not ended:
            if self._pidfd is None and self._loop is not None:
                self._exit_poll = self._loop.call_later(0.05, self._poll_exit)
            return
        if self._pidfd is not None and self._loop is not None:
            stop_watching_pidfd(self._loop, self._pidfd)
            self._pidfd = None
        for fd in list(self._readers):
            self._drain(fd)
            self._stop_reading(fd)
        self._ended_code = self._read_exit_code()
        self._maybe_finish()

    def _read_exit_code(self) -> int:
        try:
            with open(self.exit_path) as exit_file:
                return int(exit_file.read().strip())
        except (OSError, ValueError):
            log.warning("no exit code of %s (its waiting parent died)", self.name)
            return UNKNOWN_EXIT_CODE

    def _maybe_finish(self) -> None:
        """The closed record comes once every byte of the files was read."""
        if self._ended_code is None or self.exit_code is not None:
            return
        if self._tail is not None:
            code = self._ended_code
            self._tail.when_drained(lambda: self._exited(code))
            return
        self._exited(self._ended_code)

    # -- state directory ---------------------------------------------------------
    def to_state(self) -> dict:
        return dict(
            super().to_state(),
            waiter_pid=self.waiter_pid,
            waiter_ticks=self.waiter_ticks,
            exit_path=self.exit_path,
            files=dict(self.files),
            acknowledged=dict(self.acknowledged),
        )

    @classmethod
    def adopt(cls, record: dict, children_dir: str) -> WaitedProcess:
        """The child of a saved record, running or ended while no kernel ran."""
        process = cls(ProcessSpec(**record["spec"]), children_dir)
        process.exit_path = record["exit_path"]
        process.stem = process.exit_path[: -len(".exit")]
        process.pid = record["pid"]
        process.ticks = record.get("ticks")
        process.started = record["started"]
        process.waiter_pid = record["waiter_pid"]
        process.waiter_ticks = record.get("waiter_ticks")
        process.files = dict(record.get("files", {}))
        process.acknowledged = dict(record.get("acknowledged", {}))
        alive = process_start_ticks(process.waiter_pid)
        process.running = alive is not None and alive == process.waiter_ticks
        if not process.running:
            process._ended_code = process._read_exit_code()
        return process

    def resume(self) -> None:
        """Capture again what the adopted child writes, and watch its end."""
        self._begin({})

    def close(self) -> None:
        if self._tail is not None:
            self._tail.close()
            self._tail = None
        super().close()

    def forgotten(self) -> None:
        """Its end was delivered: its files in the state directory go."""
        for path in [*self.files.values(), self.exit_path]:
            try:
                os.unlink(path)
            except OSError:
                pass
