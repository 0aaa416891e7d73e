"""``dispatch supervise -C conf/dispatch.conf``: keep services running.

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

import argparse
import logging
import os
import signal
import sys
import threading
import time

import transaction
from ZODB.POSException import ConflictError

from dispatch import admin, broker, model
from dispatch.commandrunner import PAPA_VARIABLE
from dispatch.commands import (
    ADDRESS_VARIABLE,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CommandError,
    add_zeo_option,
    dispatch_state,
    open_database,
    run_command,
)
from dispatch.service import load_service

logger = logging.getLogger(__name__)

SCHEMA = os.path.join(os.path.dirname(__file__), "supervise.xml")
# How often a release of a dead instance's claims is tried when it keeps
# conflicting with consumers committing at the same time.
RELEASE_ATTEMPTS = 10
DEFAULT_PAPA = 20202


def load_configuration(path):
    """The ZConfig configuration in *path*; CommandError when it is wrong."""
    import ZConfig

    try:
        schema = ZConfig.loadSchema(SCHEMA)
        config, _ = ZConfig.loadConfig(schema, path)
    except (ZConfig.ConfigurationError, OSError) as error:
        raise CommandError(f"{path}: {error}", EXIT_USAGE) from None
    for section in config.services:
        if section.instances < 0:
            raise CommandError(
                f"{path}: <service {section.getSectionName()}>: instances must "
                f"be 0 or more, not {section.instances}",
                EXIT_USAGE,
            )
    return config


def papa_address(text):
    """A papa address as ``Papa()`` wants it: a port number or a path."""
    if text is None:
        return None
    return int(text) if str(text).isdigit() else text


def kernel_answers(address):
    """True when a papa kernel listens at *address* (a port or a socket
    path).  Checked before each ``Papa()``, which would otherwise start a
    kernel of its own where the configured one is down or restarting."""
    import socket

    if isinstance(address, str):
        family, location = socket.AF_UNIX, address
    else:
        family, location = socket.AF_INET, ("127.0.0.1", address or DEFAULT_PAPA)
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.settimeout(5)
        try:
            probe.connect(location)
        except OSError:
            return False
    return True


def release_claims(database, queue_name, pid, reason, service_class, now=None):
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


def _release_claims(dispatch, queue_name, pid, reason, service_class, now):
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


def _mark_instances_stopped(dispatch, pid, now):
    now = time.time() if now is None else now
    for instance in admin.instances_of(dispatch).values():
        if instance.pid == pid and instance.host == broker.HOST:
            if instance.stopped is None:
                instance.stopped = now


class Slot:
    """One instance to keep running: starts it through papa, watches it,
    cleans up after its death and starts it again after a back-off."""

    def __init__(self, supervisor, section, service_class, number):
        self.supervisor = supervisor
        self.section_name = section.getSectionName()
        self.service_name = section.service or self.section_name
        self.service_class = service_class
        self.queue = section.queue or service_class.queue
        self.prefetch = section.prefetch
        self.number = number
        self.pid = None
        self.starts = 0
        self.thread = threading.Thread(
            target=self._guarded, name=f"{self.label}", daemon=True
        )

    @property
    def label(self):
        return f"{self.section_name}.{self.number}"

    def _argv(self):
        argv = ["-m", "dispatch.cli", "service", self.service_name]
        argv += ["--zeo", self.supervisor.zeo, "--queue", self.queue]
        argv += ["--consumer-name", f"{self.label}"]
        if self.prefetch:
            argv += ["--prefetch", str(self.prefetch)]
        return argv

    def _guarded(self):
        try:
            self._keep_running()
        except Exception:
            logger.exception("%s: no longer supervised", self.label)

    def _keep_running(self):
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

    def _run_once(self, papa, name):
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
        if exit_code != 0:
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

    def terminate(self):
        """Ask the running instance to stop after its current message."""
        pid = self.pid
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


class Supervisor:
    """The slots of every configured service, and what they share."""

    def __init__(self, config, zeo, database):
        self.zeo = zeo
        self.database = database
        self.papa = papa_address(config.papa or os.environ.get(PAPA_VARIABLE))
        self.papa_text = self.papa or f"127.0.0.1:{DEFAULT_PAPA}"
        self.prefix = config.name
        self.backoff = config.restart_backoff
        self.backoff_cap = config.restart_backoff_cap
        self.stable_after = config.stable_after
        self.stopping = threading.Event()
        self._echo_lock = threading.Lock()
        self.slots = []
        for section in config.services:
            service_class = load_service(section.service or section.getSectionName())
            if not (section.queue or service_class.queue):
                raise CommandError(
                    f"service {service_class.__name__} names no queue", EXIT_USAGE
                )
            for number in range(1, section.instances + 1):
                self.slots.append(Slot(self, section, service_class, number))

    def echo(self, label, data):
        """Pass an instance's output on to our standard error, labelled."""
        text = data.decode("utf-8", "replace")
        with self._echo_lock:
            for line in text.splitlines():
                sys.stderr.write(f"[{label}] {line}\n")
            sys.stderr.flush()

    def start(self):
        for slot in self.slots:
            slot.thread.start()

    def stop(self):
        """Stop every instance (after its current message), then return."""
        self.stopping.set()
        for slot in self.slots:
            slot.terminate()
        for slot in self.slots:
            slot.thread.join()


def _supervise(options):
    config = load_configuration(options.configure)
    if config.eventlog is not None:
        config.eventlog()
    else:
        logging.getLogger().setLevel(logging.INFO)
    zeo = config.zeo or options.zeo
    database = open_database(zeo)
    try:
        supervisor = Supervisor(config, zeo, database)
        if not kernel_answers(supervisor.papa):
            raise CommandError(
                f"no papa kernel answers at {supervisor.papa_text} (start one: "
                "papa -C conf/papa.conf)",
                EXIT_UNREACHABLE,
            )
        done = threading.Event()

        def request_stop(signal_number, frame):
            logger.info("signal %d: stopping the services", signal_number)
            done.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        supervisor.start()
        print(
            f"supervising {len(supervisor.slots)} instance(s): "
            + ", ".join(slot.label for slot in supervisor.slots),
            flush=True,
        )
        done.wait()
        supervisor.stop()
    finally:
        transaction.abort()
        database.close()
    print("supervise: every instance stopped", flush=True)
    return EXIT_OK


def supervise_main(argv):
    """``dispatch supervise -C FILE``."""
    parser = argparse.ArgumentParser(
        prog="dispatch supervise",
        description="Keep the configured services running through papa.",
    )
    parser.add_argument(
        "-C",
        "--configure",
        metavar="FILE",
        required=True,
        help="ZConfig file (conf/dispatch.conf)",
    )
    add_zeo_option(parser)
    return run_command("supervise", parser, _supervise, argv)
