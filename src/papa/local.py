"""A process that is a direct child of the kernel.

Everything happens on the kernel's event loop, without a thread per child:
the output pipes are non-blocking readers on the loop and the exit is seen
through a pidfd (Linux 5.3+) the moment it happens.  Where pidfds are not
available a SIGCHLD-free fallback polls ``waitpid`` for that child only.

Fixes over papa 1.0.6: each pipe is read until its own EOF (one stream
closing does not close the other); a removed process's pipes keep being
drained and discarded, so a chatty child never dies of SIGPIPE; only the
kernel's managed sockets are inherited, never its client connections;
several ``$(socket.…)`` references in one argument are all substituted.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import re
import resource
import subprocess
import time

from .errors import Error
from .output import STDERR, STDOUT, OutputRing
from .process import ManagedProcess, ProcessSpec, stop_watching_pidfd
from .state import process_start_ticks

log = logging.getLogger(__name__)

READ_SIZE = 256 * 1024
# A larger pipe lets a fast writer hand over more per wakeup; 1 MiB is the
# unprivileged maximum (/proc/sys/fs/pipe-max-size) on Linux.
PIPE_SIZE = 1024 * 1024
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_REFERENCE = re.compile(r"\$\(socket\.")
_EXIT_POLL_SECONDS = 0.05


def substitute(args: list[str], sockets: dict, name: str):
    """Replace every ``$(socket.NAME.port|fileno)``; return argv, fds, clones."""
    result = []
    fds: list[int] = []
    clones = []
    for arg in args:
        pieces = []
        position = 0
        for match in _REFERENCE.finditer(arg):
            if match.start() < position:
                continue
            end = arg.find(")", match.end())
            if end < 0:
                raise Error(
                    f'Process for {name} argument starts with "$(socket." but '
                    "has no closing parenthesis"
                )
            socket_name, _, part = arg[match.end() : end].rpartition(".")
            if part not in ("port", "fileno"):
                raise Error(
                    'You forgot to specify either ".port" or ".fileno" after the name'
                )
            managed = sockets.get(socket_name)
            if managed is None:
                raise Error(f"Socket {socket_name} not found")
            if part == "port":
                replacement = str(managed.spec.port)
            else:
                fileno, clone = managed.fileno_for_child()
                if clone is not None:
                    clones.append(clone)
                fds.append(fileno)
                replacement = str(fileno)
            pieces.append(arg[position : match.start()])
            pieces.append(replacement)
            position = end + 1
        pieces.append(arg[position:])
        result.append("".join(pieces))
    return result, fds, clones


class LocalProcess(ManagedProcess):
    """A child process of the kernel with its output captured on the loop."""

    kind = "local"

    def __init__(self, spec: ProcessSpec, spill_path: str | None = None):
        super().__init__(spec)
        self._spill_path = spill_path if spec.spill else None
        self._popen: subprocess.Popen | None = None
        self._readers: dict[int, str] = {}
        self._streams: dict[int, object] = {}
        self._pidfd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exit_poll: asyncio.TimerHandle | None = None

    def start(self, sockets: dict) -> None:
        spec = self.spec
        argv, fds, clones = substitute(spec.args, sockets, spec.name)
        # Children inherit every managed socket, as in papa, so a client that
        # passes a listed fileno itself keeps working; nothing else leaks.
        pass_fds = {
            managed.socket.fileno() for managed in sockets.values() if managed.socket
        }
        pass_fds.update(fds)
        stderr = {"0": subprocess.DEVNULL, "1": subprocess.PIPE}.get(
            spec.stderr, subprocess.STDOUT
        )
        if not spec.stdout and stderr == subprocess.STDOUT:
            stderr = subprocess.DEVNULL
        extra = {}
        if spec.uid is not None:
            extra["user"] = spec.uid
            if spec.user_name is not None:
                extra["extra_groups"] = os.getgrouplist(spec.user_name, spec.gid)
        if spec.gid is not None:
            extra["group"] = spec.gid
        if spec.rlimits:
            extra["preexec_fn"] = _rlimit_setter(spec.rlimits)
        self.started = time.time()
        try:
            self._popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if spec.stdout else subprocess.DEVNULL,
                stderr=stderr,
                close_fds=True,
                pass_fds=sorted(pass_fds),
                # Its own process group, like papa's own session for the
                # child: terminal signals to the kernel do not reach it.  A
                # process group (not setsid) keeps CPython's fast vfork path,
                # which halves the spawn time.
                process_group=0,
                shell=spec.shell,
                cwd=spec.working_dir,
                env=spec.env,
                **extra,
            )
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            raise spawn_error(spec, exc)
        finally:
            for clone in clones:
                clone.close()
        self.pid = self._popen.pid
        self.ticks = process_start_ticks(self.pid)
        self.running = True
        self.output = OutputRing(spec.bufsize, self._spill_path)
        self._loop = asyncio.get_running_loop()
        for stream, kind in (
            (self._popen.stdout, STDOUT),
            (self._popen.stderr, STDERR),
        ):
            if stream is not None:
                self._streams[stream.fileno()] = stream
                self._watch_pipe(stream.fileno(), kind)
        self._watch_exit()
        log.info("started %s", self.line())

    def _watch_pipe(self, fd: int, kind: str) -> None:
        os.set_blocking(fd, False)
        try:
            fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass
        self._readers[fd] = kind
        self._loop.add_reader(fd, self._read_pipe, fd)

    def _read_pipe(self, fd: int) -> bool:
        """Read once; True if data came (there may be more), else False."""
        kind = self._readers.get(fd)
        if kind is None:
            return False
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return False
        except OSError as exc:
            log.warning("reading %s of %s failed: %s", kind, self.name, exc)
            data = b""
        if not data:
            self._stop_reading(fd)
            return False
        if self.output is not None:
            self.output.add(kind, data)
        return True

    def _stop_reading(self, fd: int) -> None:
        if self._readers.pop(fd, None) is None:
            return
        self._loop.remove_reader(fd)
        self._streams.pop(fd).close()

    def _watch_exit(self) -> None:
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            self._exit_poll = self._loop.call_later(_EXIT_POLL_SECONDS, self._poll_exit)
            return
        self._loop.add_reader(self._pidfd, self._poll_exit)

    def _poll_exit(self) -> None:
        exit_code = self._popen.poll()
        if exit_code is None:
            if self._pidfd is None:
                self._exit_poll = self._loop.call_later(
                    _EXIT_POLL_SECONDS, self._poll_exit
                )
            return
        if self._pidfd is not None:
            stop_watching_pidfd(self._loop, self._pidfd)
            self._pidfd = None
        # Whatever the child wrote before exiting is already in the pipes;
        # take it, then stop: the closed record must come last.
        for fd in list(self._readers):
            self._drain(fd)
            self._stop_reading(fd)
        self._exited(exit_code)

    def _drain(self, fd: int) -> None:
        while fd in self._readers and self._read_pipe(fd):
            pass

    def close(self) -> None:
        """Stop watching (kernel shutdown); the child keeps running."""
        for fd in list(self._readers):
            self._stop_reading(fd)
        if self._pidfd is not None:
            stop_watching_pidfd(self._loop, self._pidfd)
            self._pidfd = None
        if self._exit_poll is not None:
            self._exit_poll.cancel()
        super().close()


def spawn_error(spec: ProcessSpec, exc: BaseException) -> Error:
    """The clear error for a program that could not be started."""
    if isinstance(exc, FileNotFoundError):
        if spec.working_dir and not os.path.isdir(spec.working_dir):
            return Error(f"Bad working_dir - {exc}")
        return Error(f"Bad command - {exc}")
    if isinstance(exc, PermissionError):
        if spec.uid is not None or spec.gid is not None:
            return Error(
                f"Cannot start {spec.name} as uid={spec.uid} gid={spec.gid} "
                f"(the kernel may lack the privilege): {exc}"
            )
        return Error(f"Bad command - {exc}")
    if isinstance(exc, NotADirectoryError):
        return Error(f"Bad command - {exc}")
    if isinstance(exc, subprocess.SubprocessError) and spec.rlimits:
        return Error(
            f"Cannot start {spec.name}: the rlimits {spec.rlimits} could "
            f"not be applied (above the hard limit?): {exc}"
        )
    return Error(f"Cannot start {spec.name}: {exc}")


def _rlimit_setter(rlimits: dict[str, int]):
    limits = [
        (getattr(resource, f"RLIMIT_{name.upper()}"), value)
        for name, value in rlimits.items()
    ]

    def set_limits():
        for limit, value in limits:
            resource.setrlimit(limit, (value, value))

    return set_limits
