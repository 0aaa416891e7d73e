"""What ``dispatch supervise -C conf/dispatch.conf`` does: keep services
running.

The configuration (ZConfig, ``supervise.xml``) names services and how many
instances of each to keep.  Each instance is a ``dispatch service NAME``
process started by the papa kernel; one thread per instance watches it with
papa's ``watch_processes`` (the kernel reports its output and its end, so
nothing polls).  papa never restarts anything, so this does: when an
instance dies, the claims of the messages it was handling are released at
once in zeo (they are delivered again after their back-off instead of
waiting up to ``Service.lease`` seconds for the claim to lapse), its
instance record is marked stopped, and it is started again after a back-off
that doubles while instances keep dying quickly.

An instance that exits with status 0 was asked to stop (``dispatch
shutdown``) and is not restarted.  ``command`` and ``slurm`` steps are run
by configuring ``CommandRunner`` instances like any other service.  SIGTERM
or SIGINT stops every instance (each finishes its current message) and then
the supervisor.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from ZODB.POSException import ConflictError

from dispatch.errors import EXIT_USAGE, CommandError
from dispatch.runtime.kernel import (
    DEFAULT_PAPA,
    PAPA_VARIABLE,
    kernel_answers,
    papa_address,
)
from dispatch.runtime.service import Service, load_service
from dispatch.state import admin, broker, model
from dispatch.state.database import ADDRESS_VARIABLE, dispatch_state

logger = logging.getLogger(__name__)

SCHEMA = os.path.join(os.path.dirname(__file__), "supervise.xml")
# How often a release of a dead instance's claims is tried when it keeps
# conflicting with consumers committing at the same time.
RELEASE_ATTEMPTS = 10


def load_configuration(path: str) -> Any:
    """The ZConfig configuration in *path*; CommandError when it is wrong."""
    import ZConfig

    try:
        schema = ZConfig.loadSchema(SCHEMA)
        config, _ = ZConfig.loadConfig(schema, path)
    except (ZConfig.ConfigurationError, OSError) as error:
        raise CommandError(f"{path}: {error}", EXIT_USAGE) from None
    except (KeyError, TypeError) as error:
        # ZConfig checks a log format by formatting a record and lets
        # these out (found by fuzzing).
        raise CommandError(f"{path}: bad log format? {error!r}", EXIT_USAGE) from None
    for section in config.services:
        if section.instances < 0:
            raise CommandError(
                f"{path}: <service {section.getSectionName()}>: instances must "
                f"be 0 or more, not {section.instances}",
                EXIT_USAGE,
            )
    return config


def release_claims(
    database: Any,
    queue_name: str,
    pid: int,
    reason: str,
    service_class: type[Service],
    now: float | None = None,
) -> list[str]:
    """Release the claims held by process *pid* of this host on
    *queue_name*: each message is delivered again after its back-off (or
    dead-lettered after its last delivery).  Returns the messages' ids."""
    for _attempt in range(RELEASE_ATTEMPTS):
        try:
            with dispatch_state(database, write=True) as dispatch:
                released = _release_claims(
                    dispatch, queue_name, pid, reason, service_class, now
                )
                _mark_instances_stopped(dispatch, pid, now)
            return released
        except ConflictError:
            logger.info("releasing claims of pid %d: conflict, again", pid)
    raise CommandError(f"could not release the claims of pid {pid}")


def _release_claims(
    dispatch: model.Dispatch,
    queue_name: str,
    pid: int,
    reason: str,
    service_class: type[Service],
    now: float | None,
) -> list[str]:
    queue = dispatch.queues.get(queue_name)
    if queue is None:
        return []
    mine = [
        message
        for message in queue.ready.values()
        if message.state == model.IN_PROGRESS
        and (message.claimed_by or {}).get("pid") == pid
        and (message.claimed_by or {}).get("host") == broker.HOST
    ]
    for message in mine:
        broker.release(
            dispatch,
            message,
            reason,
            "died",
            now,
            service_class.max_deliveries,
            service_class.backoff_base,
        )
    return [message.id for message in mine]


def _mark_instances_stopped(
    dispatch: model.Dispatch, pid: int, now: float | None
) -> None:
    now = time.time() if now is None else now
    for instance in admin.instances_of(dispatch).values():
        if instance.pid == pid and instance.host == broker.HOST:
            if instance.stopped is None:
                instance.stopped = now


class Slot:
    """One instance to keep running: starts it through papa, watches it,
    cleans up after its death and starts it again after a back-off."""

    def __init__(
        self,
        supervisor: Supervisor,
        section: Any,
        service_class: type[Service],
        number: int,
    ) -> None:
        self.supervisor = supervisor
        self.section_name = section.getSectionName()
        self.service_name = section.service or self.section_name
        self.service_class = service_class
        # The Supervisor refuses a service that names no queue.
        self.queue: str = section.queue or service_class.queue or ""
        self.prefetch = section.prefetch
        self.number = number
        self.pid: int | None = None
        self.starts = 0
        self.thread = threading.Thread(
            target=self._guarded, name=f"{self.label}", daemon=True
        )

    @property
    def label(self) -> str:
        return f"{self.section_name}.{self.number}"

    def _argv(self) -> list[str]:
        argv = ["-m", "dispatch.cli", "service", self.service_name]
        argv += ["--zeo", self.supervisor.zeo, "--queue", self.queue]
        argv += ["--consumer-name", f"{self.label}"]
        if self.prefetch:
            argv += ["--prefetch", str(self.prefetch)]
        return argv

    def _guarded(self) -> None:
        try:
            self._keep_running()
        except Exception:
            logger.exception("%s: no longer supervised", self.label)

    def _keep_running(self) -> None:
        import papa

        quick_deaths = 0
        stop = self.supervisor.stopping
        while not stop.is_set():
            self.starts += 1
            name = f"{self.supervisor.prefix}.{self.label}.{self.starts}"
            started = time.monotonic()
            try:
                exit_code = self._run_once(papa, name)
            except papa.Error as error:
                logger.error("%s: papa refused to start it: %s", name, error)
                exit_code = None
            if exit_code == 0 or stop.is_set():
                logger.info("%s stopped (exit status %s)", name, exit_code)
                return
            lived = time.monotonic() - started
            quick_deaths = 0 if lived >= self.supervisor.stable_after else quick_deaths
            delay = min(
                self.supervisor.backoff * 2**quick_deaths, self.supervisor.backoff_cap
            )
            quick_deaths += 1
            logger.warning(
                "%s died (exit status %s after %.1fs); restarting in %.1fs",
                name,
                exit_code,
                lived,
                delay,
            )
            stop.wait(delay)

    def _run_once(self, papa: Any, name: str) -> int | None:
        """Start the instance, follow it to its end; its exit status."""
        environment = dict(os.environ)
        environment[ADDRESS_VARIABLE] = self.supervisor.zeo
        if self.supervisor.papa is not None:
            environment[PAPA_VARIABLE] = str(self.supervisor.papa)
        if not kernel_answers(self.supervisor.papa):
            raise papa.Error(f"no papa kernel answers at {self.supervisor.papa_text}")
        with papa.Papa(self.supervisor.papa) as kernel:
            process = kernel.make_process(
                name,
                sys.executable,
                args=self._argv(),
                env=environment,
                working_dir=os.getcwd(),
                stdout=papa.PIPE,
                stderr=papa.STDOUT,
            )
            self.pid = int(process["pid"])
            logger.info("%s started as pid %d", name, self.pid)
            if self.supervisor.stopping.is_set():
                self.terminate()
            exit_code = None
            with kernel.watch_processes(name) as watcher:
                while watcher:
                    out, _err, closed = watcher.read()
                    for record in out:
                        self.supervisor.echo(self.label, record.data)
                    for record in closed:
                        exit_code = record.data
        pid, self.pid = self.pid, None
        if exit_code != 0 and pid is not None:
            reason = f"service instance {self.label} (pid {pid}) died"
            reason += f" with exit status {exit_code}"
            released = release_claims(
                self.supervisor.database,
                self.queue,
                pid,
                reason,
                self.service_class,
            )
            for message_id in released:
                logger.warning(
                    "%s: message %s released for redelivery", name, message_id
                )
        return exit_code

    def terminate(self) -> None:
        """Ask the running instance to stop after its current message."""
        pid = self.pid
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


class Supervisor:
    """The slots of every configured service, and what they share."""

    def __init__(self, config: Any, zeo: str, database: Any) -> None:
        self.zeo = zeo
        self.database = database
        self.papa = papa_address(config.papa)
        self.papa_text = self.papa or f"127.0.0.1:{DEFAULT_PAPA}"
        self.prefix = config.name
        self.backoff = config.restart_backoff
        self.backoff_cap = config.restart_backoff_cap
        self.stable_after = config.stable_after
        self.stopping = threading.Event()
        self._echo_lock = threading.Lock()
        self.slots: list[Slot] = []
        for section in config.services:
            service_class = load_service(section.service or section.getSectionName())
            if not (section.queue or service_class.queue):
                raise CommandError(
                    f"service {service_class.__name__} names no queue", EXIT_USAGE
                )
            for number in range(1, section.instances + 1):
                self.slots.append(Slot(self, section, service_class, number))

    def echo(self, label: str, data: bytes) -> None:
        """Pass an instance's output on to our standard error, labelled."""
        text = data.decode("utf-8", "replace")
        with self._echo_lock:
            for line in text.splitlines():
                sys.stderr.write(f"[{label}] {line}\n")
            sys.stderr.flush()

    def start(self) -> None:
        for slot in self.slots:
            slot.thread.start()

    def stop(self) -> None:
        """Stop every instance (after its current message), then return."""
        self.stopping.set()
        for slot in self.slots:
            slot.terminate()
        for slot in self.slots:
            slot.thread.join()
