"""The kernel: named sockets, values and processes behind one listening socket.

One asyncio loop does everything: accepting connections, running each
connection's :class:`~papa.session.Session`, reading children's output and
seeing their exits.  There is no thread per client or per child and no lock:
handlers run one at a time on the loop, so the tables are consistent without
one, and spawning never waits for another client.

Security: the kernel listens on 127.0.0.1 or on a Unix socket made 0600.
Whoever can connect can run any program as the kernel's user.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import stat
import time

from .errors import Error
from .local import LocalProcess
from .process import ManagedProcess, ProcessSpec, check_name, split_options
from .sockets import ManagedSocket, SocketSpec
from .state import StateDirectory, adopt

log = logging.getLogger(__name__)

DEFAULT_PORT = 20202
LOOPBACK = "127.0.0.1"
# A local child gets this long after SIGTERM before SIGKILL; a Slurm job three
# times that (Slurm's own KillWait between its TERM and KILL is 30 s by default
# but the whole cancel is usually over in about a second).
CANCEL_GRACE_SECONDS = 10


def match(table: dict, patterns: list[str], required: bool = False) -> list:
    """Names in ``table`` matching papa patterns, sorted.

    No pattern, or ``*``, matches everything; ``prefix*`` matches by prefix;
    anything else is an exact name, and with ``required`` a missing exact
    name is an error (``NAME not found``), raised before anything is done.
    """
    if not patterns:
        return sorted(table)
    matched = set()
    for pattern in patterns:
        if pattern.endswith("*"):
            prefix = pattern[:-1]
            matched.update(name for name in table if name.startswith(prefix))
        elif pattern in table:
            matched.add(pattern)
        elif required:
            raise Error(f"{pattern} not found")
    return sorted(matched)


class Kernel:
    """The kernel's tables and its listening server."""

    def __init__(
        self,
        state_dir: str | None = None,
        quit_when_no_connections=False,
        slurm_settings=None,
    ):
        # papa.slurm (and Jinja2) are imported only when Slurm is used.
        self.slurm_settings = slurm_settings
        self.slurm_poller = None  # one squeue for all jobs, made on first use
        self.values: dict[str, str] = {}
        self.sockets: dict[str, ManagedSocket] = {}
        self.processes: dict[str, ManagedProcess] = {}
        self.sessions: set = set()
        self.state = StateDirectory(state_dir) if state_dir else None
        self.quit_when_no_connections = quit_when_no_connections
        self.exit_requested = False
        self.address: str | tuple | None = None
        self._server: asyncio.AbstractServer | None = None
        self._stopped: asyncio.Event | None = None
        self._unix_path: str | None = None
        self._had_connection = False

    # -- lifecycle -------------------------------------------------------------
    async def start(self, port_or_path: int | str = DEFAULT_PORT) -> None:
        """Restore the state directory, then bind and start accepting."""
        from .session import Session

        self._stopped = asyncio.Event()
        self._restore()

        loop = asyncio.get_running_loop()

        def new_session():
            return Session(self)

        if isinstance(port_or_path, str):
            listener = _bind_unix(port_or_path)
            self._unix_path = port_or_path
            self._server = await loop.create_unix_server(new_session, sock=listener)
            self.address = port_or_path
        else:
            try:
                self._server = await loop.create_server(
                    new_session, LOOPBACK, port_or_path, reuse_address=True, backlog=128
                )
            except OSError as exc:
                raise Error(f"Cannot listen on {LOOPBACK}:{port_or_path}: {exc}")
            self.address = self._server.sockets[0].getsockname()[:2]
        log.info("papa kernel listening on %s", self.address)

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    def stop(self) -> None:
        """Stop listening and release sockets; children keep running."""
        if self._stopped is None or self._stopped.is_set():
            return
        log.info("papa kernel stopping")
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions):
            session.abort()
        if self.state is not None:
            self.state.flush()
        for process in self.processes.values():
            process.close()
        if self.slurm_poller is not None:
            self.slurm_poller.close()
        for managed in self.sockets.values():
            managed.close()
        if self._unix_path:
            try:
                if stat.S_ISSOCK(os.lstat(self._unix_path).st_mode):
                    os.unlink(self._unix_path)
            except OSError:
                pass
        self._stopped.set()

    def session_opened(self, session) -> None:
        self.sessions.add(session)
        self._had_connection = True
        self.exit_requested = False  # papa: a new connection cancels the exit

    def session_closed(self, session) -> None:
        self.sessions.discard(session)
        if self.sessions:
            return
        if self.exit_requested and self.is_idle():
            self.stop()
        elif self.quit_when_no_connections and self._had_connection:
            self.stop()

    def is_idle(self) -> bool:
        """No process (even finished), no socket, no value: papa's rule."""
        return not (self.processes or self.sockets or self.values)

    # -- state directory ---------------------------------------------------------
    def changed(self) -> None:
        """Note a change worth remembering across restarts."""
        if self.state is not None:
            self.state.schedule(self.snapshot)

    def snapshot(self) -> dict:
        return {
            "values": dict(self.values),
            "sockets": [
                dict(
                    managed.spec.to_state(),
                    fileno=managed.socket.fileno() if managed.socket else None,
                )
                for managed in self.sockets.values()
            ],
            "processes": [
                process.to_state()
                for process in self.processes.values()
                if process.running
            ],
        }

    def _restore(self) -> None:
        if self.state is None:
            return
        saved = self.state.load()
        self.values.update(saved.get("values", {}))
        for record in saved.get("processes", []):
            if record.get("kind") == "slurm":
                self._adopt_job(record)
                continue
            process = adopt(record)
            if process is None:
                log.info(
                    "process %s from the state file has ended", record["spec"]["name"]
                )
                continue
            process.on_finished = self._process_finished
            process.start(self.sockets)
            self.processes[process.name] = process
            log.info("adopted %s", process.line())
        adopted = [process.pid for process in self.processes.values() if process.pid]
        for record in saved.get("sockets", []):
            record = dict(record)
            fileno = record.pop("fileno", None)
            spec = SocketSpec(**record)
            managed = ManagedSocket(spec)
            # Children that inherited the socket still hold it: take it back
            # from them first, so the port or path stays the very same socket.
            if fileno is None or not managed.recover(adopted, fileno):
                try:
                    managed.open()
                except Error as exc:
                    log.error("cannot restore socket %s: %s", spec.name, exc)
                    continue
            self.sockets[spec.name] = managed
        self.changed()

    # -- values --------------------------------------------------------------------
    def set_value(self, name: str, value: str | None) -> None:
        if value is None:
            self.values.pop(name, None)
        else:
            self.values[name] = value
        self.changed()

    def remove_values(self, patterns: list[str]) -> None:
        if not patterns or "*" in patterns:
            raise Error("You cannot remove all variables")
        for name in match(self.values, patterns):
            del self.values[name]
        self.changed()

    # -- sockets -------------------------------------------------------------------
    def make_socket(self, words: list[str]) -> ManagedSocket:
        if not words:
            raise Error("Socket requires a name")
        name = words[0]
        check_name(name, "Socket")
        options, rest = split_options(words[1:])
        if rest:
            raise Error(f"Unexpected words after the socket options: {' '.join(rest)}")
        spec = SocketSpec.from_options(name, options)
        existing = self.sockets.get(name)
        if existing is not None:
            if existing.spec.same_request(spec):
                return existing
            raise Error(
                f"Socket for {name} has already been created - {existing.line()}"
            )
        if spec.path and any(s.spec.path == spec.path for s in self.sockets.values()):
            raise Error(f"Socket for {spec.path} has already been created")
        managed = ManagedSocket(spec)
        managed.open()
        self.sockets[name] = managed
        self.changed()
        return managed

    def remove_sockets(self, patterns: list[str]) -> None:
        for name in match(self.sockets, patterns, required=True):
            self.sockets.pop(name).close()
        self.changed()

    # -- processes -----------------------------------------------------------------
    def make_process(self, words: list[str]) -> tuple[ManagedProcess, bool]:
        """Start a process (or return the same one again); also the watch flag."""
        spec, watch = ProcessSpec.from_words(words)
        existing = self.processes.get(spec.name)
        if existing is not None:
            if existing.spec.same_request(spec):
                return existing, watch
            raise Error(
                f"Process for {spec.name} has already been created - {existing.line()}"
            )
        if spec.slurm is not None:
            from .slurm.job import SlurmJob

            process = SlurmJob(spec, self.slurm(), self._jobs_dir(), self._poller())
            process.on_progress = self.changed
        else:
            spill_path = self._spill_path(spec.name) if spec.spill else None
            process = LocalProcess(spec, spill_path)
        process.on_finished = self._process_finished
        process.start(self.sockets)
        self.processes[spec.name] = process
        self.changed()
        return process, watch

    # -- Slurm -----------------------------------------------------------------------
    def slurm(self):
        """The Slurm settings (partitions from the config, else all of sinfo's)."""
        if self.slurm_settings is None:
            from .slurm import SlurmSettings

            self.slurm_settings = SlurmSettings()
        return self.slurm_settings

    def _poller(self):
        if self.slurm_poller is None:
            from .slurm.poller import JobPoller

            self.slurm_poller = JobPoller()
        return self.slurm_poller

    def _jobs_dir(self) -> str | None:
        return os.path.join(self.state.path, "slurm") if self.state else None

    def _adopt_job(self, record: dict) -> None:
        from .slurm.job import SlurmJob

        try:
            job = SlurmJob.adopt(record, self.slurm(), self._jobs_dir(), self._poller())
        except (KeyError, TypeError) as exc:
            log.error("cannot re-adopt Slurm job from the state file: %r", exc)
            return
        job.on_finished = self._process_finished
        job.on_progress = self.changed
        job.resume()
        self.processes[job.name] = job
        log.info("re-adopted Slurm job %s as %s", job.job_id, job.name)

    def list_partitions(self) -> list[dict]:
        return self.slurm().table()

    async def cancel_processes(self, patterns: list[str]) -> list[str]:
        """End processes: scancel a job, SIGTERM then SIGKILL a local child.

        Returns one line per process with how it ended; raises Error (after
        trying every one) when one did not end in time.
        """
        if not patterns:
            raise Error("cancel processes needs at least one name or pattern")
        names = match(self.processes, patterns, required=True)
        results = await asyncio.gather(
            *(self._cancel(self.processes[name]) for name in names),
            return_exceptions=True,
        )
        lines, failures = [], []
        for name, result in zip(names, results, strict=True):
            if isinstance(result, Error):
                failures.append(str(result))
            elif isinstance(result, BaseException):
                raise result
            else:
                lines.append(f"{name} exit_code={self.processes[name].exit_code}")
        if failures:
            raise Error("; ".join(failures))
        return lines

    async def _cancel(self, process: ManagedProcess) -> None:
        if not process.running:
            return
        if process.kind == "slurm":
            await process.cancel(CANCEL_GRACE_SECONDS * 3)
            return
        for signal_number, grace in (
            (signal.SIGTERM, CANCEL_GRACE_SECONDS),
            (signal.SIGKILL, CANCEL_GRACE_SECONDS),
        ):
            try:
                os.kill(process.pid, signal_number)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + grace
            while process.running and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if not process.running:
                return
        raise Error(f"{process.name} (pid {process.pid}) did not end after SIGKILL")

    def _spill_path(self, name: str) -> str:
        if self.state is not None:
            return self.state.spill_path(name, os.getpid())
        import tempfile

        descriptor, path = tempfile.mkstemp(prefix=f"papa-spill-{name}-")
        os.close(descriptor)
        return path

    def remove_processes(self, patterns: list[str]) -> None:
        for name in match(self.processes, patterns, required=True):
            process = self.processes[name]
            process.remove()
            if not process.running:
                self.forget_process(process)
        self.changed()

    def forget_process(self, process: ManagedProcess) -> None:
        """Drop a finished process's entry (its closed record was consumed)."""
        if self.processes.get(process.name) is process:
            del self.processes[process.name]
            process.close()
            self.changed()

    def _process_finished(self, process: ManagedProcess) -> None:
        if process.removed:
            self.forget_process(process)
        else:
            self.changed()


def _bind_unix(path: str) -> socket.socket:
    """A listening Unix socket at ``path``, mode 0600.

    A stale socket file (nothing answers) is replaced; a live one means a
    kernel is already there; any other file is never touched.
    """
    if not os.path.isabs(path):
        raise Error(f"The Unix socket path must be absolute, not {path!r}")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(mode):
            raise Error(f"{path} exists and is not a socket; refusing to remove it")
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)
        else:
            raise Error(f"A kernel is already listening on {path}")
        finally:
            probe.close()
    listener = socket.socket(socket.AF_UNIX)
    try:
        listener.bind(path)
        os.chmod(path, 0o600)
        listener.listen(128)
    except OSError as exc:
        listener.close()
        raise Error(f"Cannot listen on {path}: {exc}")
    return listener


async def serve(
    port_or_path: int | str = DEFAULT_PORT,
    state_dir: str | None = None,
    quit_when_no_connections: bool = False,
    on_ready=None,
    handle_signals: bool = False,
    slurm_settings=None,
) -> Kernel:
    """Run a kernel until it stops; ``on_ready(kernel)`` once it listens."""
    kernel = Kernel(state_dir, quit_when_no_connections, slurm_settings)
    await kernel.start(port_or_path)
    if handle_signals:
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signal_number, kernel.stop)
    if on_ready is not None:
        on_ready(kernel)
    await kernel.wait_stopped()
    return kernel


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when it is installed (faster I/O), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(port_or_path=DEFAULT_PORT, state_dir=None, **options) -> None:
    """Run a kernel in this thread until it stops (blocking)."""
    loop = new_event_loop()
    try:
        loop.run_until_complete(serve(port_or_path, state_dir, **options))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def start_in_thread(port_or_path=DEFAULT_PORT, quit_when_no_connections=False):
    """Start a kernel in a daemon thread (papa's debug mode); return the thread.

    Raises Error if the kernel cannot listen.
    """
    import threading

    ready = threading.Event()
    failure: list[BaseException] = []

    def on_ready(kernel):
        ready.set()

    def target():
        try:
            run(
                port_or_path,
                quit_when_no_connections=quit_when_no_connections,
                on_ready=on_ready,
            )
        except BaseException as exc:  # reported to the starting thread
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=target, name="papa-kernel", daemon=True)
    thread.start()
    ready.wait()
    if failure:
        raise Error(f"Cannot start the kernel: {failure[0]}")
    return thread
