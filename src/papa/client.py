"""The client library, with papa 1.0.6's names and signatures.

``Papa(port_or_path=None, connection_timeout=None)`` connects to a kernel
(127.0.0.1:20202 by default), starting one when none answers.  It works
against a real papa 1.0.6 kernel as well as ours.

Fixes over papa 1.0.6: the autostarted kernel is a separate ``python -m
papa`` process, never a fork of the client, and a later ``Papa()`` starts a
new one once it has exited; ``Watcher.ready`` tells whether a batch is
waiting; ``Watcher.read()`` returns an empty (falsy) batch at the end
instead of None, so ``while watcher: out, err, closed = watcher.read()``
ends cleanly; no batch is ever swallowed by the client's buffer; empty
values, newlines, values beginning with ``Error:`` and arguments containing
``=`` travel intact (newlines need our kernel: a real papa raises Error
instead of silently mangling them); non-string arguments are converted.
"""

from __future__ import annotations

import logging
import os
import shlex
import socket
import ssl as ssl_module
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, Literal, overload

from .autostart import kernel_alive, start_kernel_process, start_kernel_thread
from .closing import ClosedOnExit
from .connection import ClientConnection, append_options, option_value
from .errors import AuthenticationError, Error
from .protocol import unescape
from .sockets import FAMILY_NAMES, TYPE_NAMES
from .watcher import Watcher

log = logging.getLogger(__name__)

PIPE = subprocess.PIPE
STDOUT = subprocess.STDOUT
DEVNULL = subprocess.DEVNULL

RETRY_SECONDS = 0.05


class Papa(ClosedOnExit):
    """A connection to a papa kernel (started on demand)."""

    _debug_mode = False
    _single_connection_mode = False
    _default_port_or_path: int | str = 20202
    _default_connection_timeout: float = 10

    spawn_lock = threading.Lock()
    spawned = False
    # address -> Popen or Thread this process started
    _kernels: dict[int | str, subprocess.Popen | threading.Thread] = {}

    def __init__(
        self,
        port_or_path: int | str | None = None,
        connection_timeout: float | None = None,
        *,
        host: str | None = None,
        ssl: ssl_module.SSLContext | None = None,
        token: str | None = None,
    ) -> None:
        """*host*, *ssl* and *token* reach a kernel that asks for them
        (papa.security); a kernel is started on demand only on this host."""
        port_or_path = port_or_path or self._default_port_or_path
        self.ssl, self.token = ssl, token
        self.port_or_path = port_or_path
        self.connection_timeout = connection_timeout or self._default_connection_timeout
        self.location: str | tuple[str, int]
        if isinstance(port_or_path, str):
            if not os.path.isabs(port_or_path):
                raise Error("Path to Unix socket must be absolute.")
            self.family = socket.AF_UNIX
            self.location = port_or_path
        else:
            self.family = socket.AF_INET
            self.location = (host or "127.0.0.1", int(port_or_path))
        self.connection: ClientConnection | None = None
        self.t: threading.Thread | None = None
        # A kernel is started on demand only for a plain local client: a
        # failed TLS handshake or login must not start a second kernel.
        self._connect(allow_spawn=host is None and ssl is None and token is None)

    def __exit__(self, *exc_info: object) -> None:
        # Closing is not all: a kernel thread this Papa started to serve
        # this one connection ends with it, and a later Papa starts anew.
        self.close()
        if self._single_connection_mode and self.t is not None:
            self.t.join(self.connection_timeout)
            with Papa.spawn_lock:
                Papa._kernels.pop(self.port_or_path, None)
                Papa.spawned = False

    # -- connecting ------------------------------------------------------------
    def _connect(self, allow_spawn: bool = False) -> ClientConnection:
        deadline = time.monotonic() + self.connection_timeout
        while True:
            try:
                connection = ClientConnection(
                    self.family,
                    self.location,
                    self.connection_timeout,
                    self.ssl,
                    self.token,
                )
                self.connection = connection
                connection.negotiate()
                return connection
            except AuthenticationError:
                self.connection = None
                raise
            except (OSError, Error):
                self.connection = None
            if time.monotonic() >= deadline:
                break
            if allow_spawn:
                self._spawn_kernel()
            time.sleep(RETRY_SECONDS)
        message = f"Could not connect to Papa in {self.connection_timeout} seconds"
        log.error(message)
        raise Error(message)

    def _spawn_kernel(self) -> None:
        """Start a kernel unless one this process started is still running.

        Serialised across threads: several threads failing to connect at
        once start one kernel.  Once that kernel has exited, a later
        ``Papa()`` starts a new one (papa 1.0.6 never did).
        """
        with Papa.spawn_lock:
            started = Papa._kernels.get(self.port_or_path)
            if started is not None and kernel_alive(started):
                return
            if self._debug_mode:
                thread = start_kernel_thread(
                    self.port_or_path, self._single_connection_mode
                )
                if thread is None:
                    return
                self.t = started = thread
            else:
                started = start_kernel_process(self.port_or_path)
            Papa._kernels[self.port_or_path] = started
            Papa.spawned = True

    def _open_connection(self) -> ClientConnection:
        """The connection to the kernel, connecting first if there is none."""
        if self.connection is None:
            return self._connect()
        return self.connection

    def _command(self, words: list) -> str:
        # The per-call path: no call but the command itself.
        return (self.connection or self._connect()).command(words)

    def fileno(self) -> int | None:
        return self.connection.sock.fileno() if self.connection else None

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    # -- sockets ---------------------------------------------------------------
    def _socket_dict(self, line: str) -> tuple[str, dict[str, Any]]:
        words = self._open_connection().split(line)
        info: dict[str, Any] = dict(word.partition("=")[::2] for word in words[1:])
        for key in ("backlog", "port", "fileno"):
            if key in info:
                info[key] = int(info[key])
        return words[0], info

    def list_sockets(self, *patterns: str) -> dict[str, dict[str, Any]]:
        reply = self._command(["l", "s", *patterns])
        return dict(self._socket_dict(line) for line in reply.split("\n") if line)

    def make_socket(
        self,
        name: str,
        host: str | None = None,
        port: int | None = None,
        family: int | None = None,
        socket_type: int | None = None,
        backlog: int | None = None,
        path: str | None = None,
        umask: int | None = None,
        interface: str | None = None,
        reuseport: bool | None = None,
    ) -> dict[str, Any]:
        if not name:
            raise Error("Socket requires a name")
        words = ["m", "s", name]
        if family is not None:
            if family not in FAMILY_NAMES:
                raise Error("Invalid socket family")
            words.append(f"family={FAMILY_NAMES[family]}")
        if socket_type is not None:
            if socket_type not in TYPE_NAMES:
                raise Error("Invalid socket type")
            words.append(f"type={TYPE_NAMES[socket_type]}")
        append_options(words, backlog=backlog)
        if path:
            if not path.startswith("/") or path[-1] in "/\\":
                raise Error("Socket path must be absolute to a file")
            words.append(f"path={path}")
            append_options(words, umask=umask)
        else:
            append_options(words, host=host, port=port, interface=interface)
            if reuseport:
                words.append("reuseport=1")
        return self._socket_dict(self._command(words))[1]

    def remove_sockets(self, *patterns: str) -> bool:
        self._command(["r", "s", *patterns])
        return True

    # -- values ------------------------------------------------------------------
    def list_values(self, *patterns: str) -> dict[str, str]:
        reply = self._command(["l", "v", *patterns])
        result = {}
        for line in reply.split("\n"):
            if not line:
                continue
            connection = self._open_connection()
            if connection.escapes:
                words = connection.split(line)
                result[words[0]] = words[1] if len(words) > 1 else ""
            else:
                name, _, value = line.partition(" ")
                result[name] = value
        return result

    def set(self, name: str, value: object = None) -> None:
        connection = self.connection or self._connect()
        if value is None or value == "":
            connection.command(["set", name])
        else:
            connection.command(["set", name, str(value)])

    def get(self, name: str) -> str | None:
        connection = self.connection or self._connect()
        reply = connection.command(["get", name])
        if connection.escapes and "\\" in reply:
            reply = unescape(reply)
        return reply or None

    def remove_values(self, *patterns: str) -> bool:
        self._command(["r", "v", *patterns])
        return True

    # -- processes -----------------------------------------------------------------
    def _process_dict(self, line: str) -> tuple[str, dict[str, Any]]:
        words = self._open_connection().split(line)
        info: dict[str, Any] = {}
        for index, word in enumerate(words[1:], start=1):
            key, _, value = word.partition("=")
            if key == "args":
                info["args"] = " ".join([value, *words[index + 1 :]])
                break
            if key in ("pid", "slurm_job", "exit_code"):
                info[key] = int(value)
            elif key == "started":
                info[key] = float(value)
            elif key in ("running", "shell"):
                info[key] = value == "True"
            else:
                info[key] = value
        return words[0], info

    def list_processes(self, *patterns: str) -> dict[str, dict[str, Any]]:
        reply = self._command(["l", "p", *patterns])
        return dict(self._process_dict(line) for line in reply.split("\n") if line)

    # With watch_immediately=True (keyword) a Watcher, else the process's dict.
    @overload
    def make_process(
        self,
        name: str,
        executable: str | None = None,
        args: str | bytes | Iterable[object] | None = None,
        env: Mapping[str, object] | None = None,
        working_dir: str | None = None,
        uid: int | str | None = None,
        gid: int | str | None = None,
        rlimits: Mapping[str, int] | None = None,
        stdout: int | None = None,
        stderr: int | None = None,
        bufsize: int | None = None,
        *,
        watch_immediately: Literal[True],
        slurm: Mapping[str, object] | None = None,
    ) -> Watcher: ...
    @overload
    def make_process(
        self,
        name: str,
        executable: str | None = None,
        args: str | bytes | Iterable[object] | None = None,
        env: Mapping[str, object] | None = None,
        working_dir: str | None = None,
        uid: int | str | None = None,
        gid: int | str | None = None,
        rlimits: Mapping[str, int] | None = None,
        stdout: int | None = None,
        stderr: int | None = None,
        bufsize: int | None = None,
        watch_immediately: Literal[False] | None = None,
        slurm: Mapping[str, object] | None = None,
    ) -> dict[str, Any]: ...
    @overload
    def make_process(
        self,
        name: str,
        executable: str | None = None,
        args: str | bytes | Iterable[object] | None = None,
        env: Mapping[str, object] | None = None,
        working_dir: str | None = None,
        uid: int | str | None = None,
        gid: int | str | None = None,
        rlimits: Mapping[str, int] | None = None,
        stdout: int | None = None,
        stderr: int | None = None,
        bufsize: int | None = None,
        watch_immediately: bool | None = None,
        slurm: Mapping[str, object] | None = None,
    ) -> dict[str, Any] | Watcher: ...
    def make_process(
        self,
        name: str,
        executable: str | None = None,
        args: str | bytes | Iterable[object] | None = None,
        env: Mapping[str, object] | None = None,
        working_dir: str | None = None,
        uid: int | str | None = None,
        gid: int | str | None = None,
        rlimits: Mapping[str, int] | None = None,
        stdout: int | None = None,
        stderr: int | None = None,
        bufsize: int | None = None,
        watch_immediately: bool | None = None,
        slurm: Mapping[str, object] | None = None,
    ) -> dict[str, Any] | Watcher:
        """Start a process; with ``slurm`` (a dict of requests, see
        docs/slurm.rst) submit it as a Slurm batch job instead.

        Returns the process's entry as :meth:`list_processes` gives it, or
        with *watch_immediately* a :class:`Watcher` of it."""
        words = ["m", "p", name]
        if slurm is not None:
            words.append("slurm=1")
            for key, value in slurm.items():
                if isinstance(value, list | tuple):
                    value = shlex.join(str(item) for item in value)
                elif isinstance(value, bool):
                    value = "1" if value else "0"
                words.append(f"slurm.{key}={option_value(value)}")
        append_options(
            words, working_dir=working_dir, uid=uid, gid=gid, bufsize=bufsize
        )
        if watch_immediately:
            words.append("watch=1")
        if bufsize != 0:
            if stdout is not None:
                if stdout == DEVNULL:
                    words.append("stdout=0")
                elif stdout != PIPE:
                    raise Error("stdout must be DEVNULL or PIPE")
            if stderr is not None:
                if stderr == DEVNULL:
                    words.append("stderr=0")
                elif stderr == STDOUT:
                    words.append("stderr=stdout")
                elif stderr != PIPE:
                    raise Error("stderr must be DEVNULL, PIPE or STDOUT")
        for key, value in (env or {}).items():
            words.append(f"env.{key}={option_value(value)}")
        for key, value in (rlimits or {}).items():
            words.append(f"rlimit.{key.lower()}={value}")
        if executable:
            words.append(executable)
        if args is not None and args != "":
            if isinstance(args, str | bytes):
                words.append(args if isinstance(args, str) else args.decode())
            else:
                try:
                    words.extend(str(arg) for arg in args)
                except TypeError:
                    words.append(str(args))
        if watch_immediately:
            return self._watch(words)
        return self._process_dict(self._command(words))[1]

    def cancel_processes(self, *patterns: str) -> dict[str, int | None]:
        """End processes (scancel, or SIGTERM/SIGKILL); name -> exit code."""
        reply = self._command(["cancel", "processes", *patterns])
        result: dict[str, int | None] = {}
        for line in reply.split("\n"):
            if line:
                name, _, code = line.rpartition(" exit_code=")
                result[name] = int(code) if code.lstrip("-").isdigit() else None
        return result

    def list_partitions(self) -> dict[str, dict[str, Any]]:
        """Slurm partitions: name -> description, limits and free resources."""
        reply = self._command(["list", "partitions"])
        result = {}
        for line in reply.split("\n"):
            if not line:
                continue
            words = self._open_connection().split(line)
            info: dict[str, Any] = {}
            for word in words[1:]:
                key, _, value = word.partition("=")
                if value.isdigit():
                    info[key] = int(value)
                elif value in ("True", "False"):
                    info[key] = value == "True"
                else:
                    info[key] = value
            result[words[0]] = info
        return result

    def check_slurm(self, slurm: Mapping[str, object]) -> list[str]:
        """Check a Slurm request as :meth:`make_process` would, submitting nothing:
        its sbatch options, or :class:`~papa.errors.RequestError` (the field)."""
        words = [f"slurm.{key}={option_value(value)}" for key, value in slurm.items()]
        reply = self._command(["check", "slurm", *words])
        return [line for line in reply.split("\n") if line]

    def peek(self, name: str, lines: int | None = None) -> list[str]:
        """The last *lines* lines (default 20) of *name*'s output (``peek``)."""
        reply = self._command(["peek", name] + ([] if lines is None else [str(lines)]))
        return [unescape(line) for line in reply.split("\n")] if reply else []

    def remove_processes(self, *patterns: str) -> bool:
        self._command(["r", "p", *patterns])
        return True

    def watch_processes(self, *patterns: str) -> Watcher:
        return self._watch(["w", "p", *patterns])

    def _watch(self, words: list) -> Watcher:
        connection = self._open_connection()
        connection.send_words(words)
        connection.read_line_exactly()  # "Watching N" or the process line
        self.connection = None
        return Watcher(self, connection)

    def exit_if_idle(self) -> bool:
        return self._command(["exit-if-idle"]).startswith("Exiting")

    # -- process-wide defaults (papa's class-level settings) -----------------------
    @classmethod
    def set_debug_mode(
        cls, mode: bool = True, quit_when_connection_closed: bool = False
    ) -> None:
        cls._debug_mode = mode
        if quit_when_connection_closed:
            cls._single_connection_mode = True

    @classmethod
    def set_default_port(cls, port: int) -> None:
        cls._default_port_or_path = port

    @classmethod
    def set_default_path(cls, path: str) -> None:
        cls._default_port_or_path = path

    @classmethod
    def set_default_connection_timeout(cls, connection_timeout: float) -> None:
        cls._default_connection_timeout = connection_timeout


def set_debug_mode(
    mode: bool = True, quit_when_connection_closed: bool = False
) -> None:
    """Start kernels in a thread of this process instead of a child process."""
    return Papa.set_debug_mode(mode, quit_when_connection_closed)


def set_default_port(port: int) -> None:
    """The port later ``Papa()`` calls connect to (20202 by default)."""
    return Papa.set_default_port(port)


def set_default_path(path: str) -> None:
    """The Unix socket path later ``Papa()`` calls connect to."""
    return Papa.set_default_path(path)


def set_default_connection_timeout(connection_timeout: float) -> None:
    """Seconds a later ``Papa()`` keeps trying to connect (10 by default)."""
    return Papa.set_default_connection_timeout(connection_timeout)
