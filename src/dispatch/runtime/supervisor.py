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
that doubles while instances keep dying quickly.  A supervisor started
again (after SIGKILL, say) adopts the instances papa still runs under its
name and settles those that died while none watched.

An instance that exits with status 0 was asked to stop (``dispatch
shutdown``) and is not restarted on its own.  The supervisor records itself
in zeo (:mod:`dispatch.state.supervisors`) and watches that record: a start
request on it (the console's Start button) starts a stopped instance of the
service named again.  ``command`` and ``slurm`` steps are run
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
from dispatch.state import admin, broker, model, supervisors
from dispatch.state.database import (
    ADDRESS_VARIABLE,
    dispatch_state,
    sync_with_server,
    write_retried,
)

logger = logging.getLogger(__name__)

SCHEMA = os.path.join(os.path.dirname(__file__), "supervise.xml")
# How often a release of a dead instance's claims is tried when it keeps
# conflicting with consumers committing at the same time.
RELEASE_ATTEMPTS = 10


def load_configuration(path: str) -> Any:
    """The ZConfig configuration in *path*; CommandError when it is wrong
    (:mod:`dispatch.runtime.configuration` also reads YAML)."""
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
    check_configuration(config, path)
    return config


def check_configuration(config: Any, where: str) -> None:
    """What the schema cannot say; *where* starts the error message."""
    for section in config.services:
        if section.instances < 0:
            raise CommandError(
                f"{where}: <service {section.getSectionName()}>: instances must "
                f"be 0 or more, not {section.instances}",
                EXIT_USAGE,
            )


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
        # The claim the process committed just before it died must be seen.
        sync_with_server(database)
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
    for instance in list(admin.running_index(dispatch).values()):
        if instance.pid == pid and instance.host == broker.HOST:
            admin.mark_stopped(dispatch, instance, now)


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
        # True once it stopped cleanly (exit 0): a start request may restart it.
        self.ended = False
        self.thread = self._new_thread()

    def _new_thread(self) -> threading.Thread:
        return threading.Thread(target=self._guarded, name=self.label, daemon=True)

    def restart(self) -> None:
        """Keep the instance running again after a clean stop."""
        self.thread.join()
        self.ended = False
        self.thread = self._new_thread()
        self.thread.start()

    @property
    def label(self) -> str:
        return f"{self.section_name}.{self.number}"

    def _argv(self) -> list[str]:
        argv = ["-m", "dispatch.cli", "service", self.service_name]
        argv += ["--zeo", self.supervisor.zeo, "--queue", self.queue]
        argv += ["--consumer-name", f"{self.label}"]
        argv += ["--heartbeat-interval", str(self.supervisor.heartbeat_interval)]
        if self.prefetch:
            argv += ["--prefetch", str(self.prefetch)]
        # A YAML configuration's storage is for the services: same file, same
        # environments.
        return argv + self.supervisor.site_arguments

    def _guarded(self) -> None:
        try:
            self._keep_running()
        except Exception:
            logger.exception("%s: no longer supervised", self.label)
        self.ended = True
        if not self.supervisor.stopping.is_set():
            self.supervisor.note_stopped()

    def _keep_running(self) -> None:
        import papa

        quick_deaths = 0
        stop = self.supervisor.stopping
        settled = False  # the instances of an earlier supervisor
        while not stop.is_set():
            adopted, name = None, self.label
            started = time.monotonic()
            try:
                if not settled:
                    adopted = self._adopt(papa)
                    settled = True
                if adopted is None:
                    self.starts += 1
                    name = f"{self.supervisor.prefix}.{self.label}.{self.starts}"
                else:
                    name = adopted["name"]
                exit_code = self._run_once(papa, name, adopted)
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

    def _adopt(self, papa: Any) -> dict[str, Any] | None:
        """The instances of this slot papa knows from an earlier supervisor
        (killed, or restarted): each that ended meanwhile is settled (its
        claims released, its end acknowledged); the newest still running
        is returned (its papa entry, with its ``name``), to be followed
        instead of starting another, or None.  Numbering goes on after them."""
        prefix = f"{self.supervisor.prefix}.{self.label}."
        if not kernel_answers(self.supervisor.papa):
            raise papa.Error(f"no papa kernel answers at {self.supervisor.papa_text}")
        with papa.Papa(self.supervisor.papa) as kernel:
            found = kernel.list_processes(prefix + "*")
        earlier = {}
        for name, info in found.items():
            number = name[len(prefix) :]
            if number.isascii() and number.isdigit():
                earlier[int(number)] = dict(info, name=name)
        self.starts = max(earlier, default=0)
        running = [info for _, info in sorted(earlier.items()) if info.get("running")]
        for info in earlier.values():
            if not info.get("running"):
                self._run_once(papa, info["name"], info)
        for info in running[:-1]:
            # Never left by a supervisor since they are adopted; stopped
            # after its current message, so that the slot runs one.
            logger.warning("%s: an extra instance; stopping it", info["name"])
            try:
                os.kill(int(info["pid"]), signal.SIGTERM)
            except ProcessLookupError:
                pass
        if running:
            logger.info(
                "%s: adopting it (pid %s)", running[-1]["name"], running[-1]["pid"]
            )
        return running[-1] if running else None

    def _run_once(
        self, papa: Any, name: str, adopted: dict[str, Any] | None = None
    ) -> int | None:
        """Start the instance (or follow the *adopted* one) to its end; its
        exit status."""
        environment = dict(os.environ)
        environment[ADDRESS_VARIABLE] = self.supervisor.zeo
        if self.supervisor.papa is not None:
            environment[PAPA_VARIABLE] = str(self.supervisor.papa)
        if not kernel_answers(self.supervisor.papa):
            raise papa.Error(f"no papa kernel answers at {self.supervisor.papa_text}")
        with papa.Papa(self.supervisor.papa) as kernel:
            process = adopted or kernel.make_process(
                name,
                sys.executable,
                args=self._argv(),
                env=environment,
                working_dir=os.getcwd(),
                stdout=papa.PIPE,
                stderr=papa.STDOUT,
            )
            self.pid = int(process["pid"])
            if adopted is None:
                logger.info("%s started as pid %d", name, self.pid)
            if self.supervisor.stopping.is_set():
                self.terminate()
            exit_code = None
            with kernel.watch_processes(name) as watcher:
                while watcher:
                    # Reading acknowledges the batch before: an end is
                    # acknowledged once the claims are released, so a
                    # supervisor killed in between releases them on restart.
                    out, _err, closed = watcher.read()
                    for record in out:
                        self.supervisor.echo(self.label, record.data)
                    for record in closed:
                        exit_code = record.data
                        self._ended(name, exit_code)
        self.pid = None
        return exit_code

    def _ended(self, name: str, exit_code: Any) -> None:
        """Release the claims of the instance that just ended (unless it
        was asked to stop)."""
        pid = self.pid
        if exit_code == 0 or pid is None:
            return
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
            logger.warning("%s: message %s released for redelivery", name, message_id)

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
        self.heartbeat_interval = config.heartbeat_interval
        site = getattr(config, "site", None)
        self.site_arguments: list[str] = site.command_line() if site else []
        self.stopping = threading.Event()
        self._echo_lock = threading.Lock()
        self.slots: list[Slot] = []
        # What the record in zeo says we keep: section -> its fields.
        self.services: dict[str, dict[str, Any]] = {}
        for section in config.services:
            service_class = load_service(section.service or section.getSectionName())
            if not (section.queue or service_class.queue):
                raise CommandError(
                    f"service {service_class.__name__} names no queue", EXIT_USAGE
                )
            for number in range(1, section.instances + 1):
                self.slots.append(Slot(self, section, service_class, number))
            self.services[section.getSectionName()] = {
                "service": service_class.__name__,
                "queue": section.queue or service_class.queue,
                "instances": section.instances,
            }
        self.record_id: str | None = None
        self._asked = threading.Event()
        self._watch: Any = None
        self._requests = threading.Thread(
            target=self._serve_requests, name="start requests", daemon=True
        )

    def echo(self, label: str, data: bytes) -> None:
        """Pass an instance's output on to our standard error, labelled."""
        text = data.decode("utf-8", "replace")
        with self._echo_lock:
            for line in text.splitlines():
                sys.stderr.write(f"[{label}] {line}\n")
            sys.stderr.flush()

    def start(self) -> None:
        """Record this supervisor in zeo, watch the record for start
        requests and start every instance."""
        record = self._write(
            lambda dispatch: supervisors.register(dispatch, self.prefix, self.services)
        )
        self.record_id = record.id
        watch = getattr(self.database.storage, "watch", None)
        if watch is None:
            logger.warning("the storage cannot be watched: no start requests")
        else:
            self._watch = watch(
                lambda tid, oids: self._asked.set(), oids=[record._p_oid]
            )
        self._requests.start()
        for slot in self.slots:
            slot.thread.start()

    def stop(self) -> None:
        """Stop every instance (after its current message), then return."""
        self.stopping.set()
        self._asked.set()
        if self._watch is not None:
            self._watch.close()
        for slot in self.slots:
            slot.terminate()
        for slot in self.slots:
            slot.thread.join()
        if self._requests.is_alive():
            self._requests.join()
        if self.record_id is not None:
            self._write(
                lambda dispatch: setattr(self._record(dispatch), "stopped", time.time())
            )

    def _record(self, dispatch: model.Dispatch) -> supervisors.SupervisorRecord:
        return supervisors.supervisors_of(dispatch)[self.record_id]

    def _write(self, function: Any) -> Any:
        """``function(dispatch)`` in a transaction, again on conflicts."""
        return write_retried(self.database, function, RELEASE_ATTEMPTS)

    def note_stopped(self) -> None:
        """Record how many instances of each service are stopped."""

        def count(dispatch: model.Dispatch) -> None:
            record = self._record(dispatch)
            for section in self.services:
                ended = [s for s in self.slots if s.section_name == section and s.ended]
                supervisors.note_stopped(record, section, len(ended))

        self._write(count)

    def _serve_requests(self) -> None:
        """Start a stopped instance for each start request on our record."""
        while True:
            self._asked.wait()
            self._asked.clear()
            if self.stopping.is_set():
                return
            try:
                sections = self._write(
                    lambda dispatch: supervisors.take_requests(self._record(dispatch))
                )
                for section in sections:
                    self._start_one(section)
                if sections:
                    self.note_stopped()
            except Exception:
                logger.exception("start requests: failed")

    def _start_one(self, section: str) -> None:
        for slot in self.slots:
            if slot.section_name == section and slot.ended:
                logger.info("%s: started again on request", slot.label)
                slot.restart()
                return
        logger.warning("start request for %s: no stopped instance", section)
