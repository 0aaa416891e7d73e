"""Services: long-running consumers of a queue, as zocalo's CommonService.

A service is a class with a ``queue`` and a ``handle(recipe_wrapper,
payload)`` method, registered under the entry-point group
``dispatch.services`` (or named as ``module:Class``).  ``dispatch service
NAME`` runs one instance; several instances may share a queue.  It waits for
work with zeo's ``watch()`` and stops cleanly on SIGTERM or SIGINT, between
messages (a message being handled is finished first).
"""

import argparse
import importlib
import logging
import signal
import threading
import time
from importlib.metadata import entry_points

from dispatch import admin, broker
from dispatch.commands import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    add_zeo_option,
    dispatch_state,
    open_database,
    run_command,
)
from dispatch.consumer import Consumer

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "dispatch.services"


class Service:
    """Base class of services: set ``queue``, override :meth:`handle`.

    Raising in :meth:`handle` makes the delivery fail: the message comes
    back after a back-off and becomes a dead letter after
    ``max_deliveries``.
    """

    queue: str | None = None
    service_name: str | None = None
    lease = broker.DEFAULT_LEASE
    max_deliveries = broker.MAX_DELIVERIES
    backoff_base = broker.BACKOFF_BASE
    # Messages claimed and committed together (1: one at a time, zocalo's
    # behaviour; more: fewer commits, a wider redelivery window on a crash).
    prefetch = 1
    # False: the handler commits on its own while it works (CommandRunner),
    # so its messages are always claimed one at a time.
    batchable = True
    # The Consumer feeding this instance (set by make_consumer).
    consumer = None

    def initializing(self):
        """Called once before the first message (open resources here)."""

    def handle(self, recipe_wrapper, payload):
        """Handle one message; send on with ``recipe_wrapper.send*``."""
        raise NotImplementedError

    def in_shutdown(self):
        """Called once after the last message."""

    def stop_requested(self):
        """Called (from another thread, or a signal handler) when the
        instance is asked to stop; the current message is finished first
        unless the service does something about it here."""


def known_services():
    """``{name: entry point}`` of the ``dispatch.services`` group."""
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def load_service(name):
    """The service class for *name*: ``module:Class``, or an entry point
    matched exactly, case-insensitively, or by a unique prefix (as
    ``zocalo.service -s``)."""
    if ":" in name:
        module_name, _, class_name = name.partition(":")
        try:
            return getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as error:
            raise CommandError(f"cannot load service {name}: {error}", EXIT_USAGE)
    services = known_services()
    folded = {key.lower(): key for key in services}
    if name in services:
        return services[name].load()
    if name.lower() in folded:
        return services[folded[name.lower()]].load()
    matches = [key for key in services if key.lower().startswith(name.lower())]
    if len(matches) == 1:
        return services[matches[0]].load()
    known = ", ".join(sorted(services)) or "none registered"
    reason = "is ambiguous" if matches else "is not known"
    raise CommandError(
        f"service {name!r} {reason} (known services: {known}; or give module:Class)",
        EXIT_USAGE,
    )


def make_consumer(service, database, queue=None, name=None):
    """The :class:`Consumer` that feeds *service* (an instance)."""
    queue = queue or service.queue
    if not queue:
        raise CommandError(f"{type(service).__name__} names no queue", EXIT_USAGE)
    prefetch = service.prefetch
    if prefetch > 1 and not service.batchable:
        logger.warning("%s takes one message at a time", type(service).__name__)
        prefetch = 1
    service.consumer = Consumer(
        database,
        queue,
        service.handle,
        name=name,
        lease=service.lease,
        max_deliveries=service.max_deliveries,
        backoff_base=service.backoff_base,
        prefetch=prefetch,
        chain_claims=service.batchable,
    )
    return service.consumer


def run_service(service, consumer, stop):
    """Serve *service* through *consumer* until *stop* is set; *stop* is set
    on the way out in any case, so a waiting main thread learns of a crash."""
    try:
        service.initializing()
        logger.info(
            "service %s consuming %s as %s",
            type(service).__name__,
            consumer.queue,
            consumer.name,
        )
        consumer.serve(stop)
    except Exception:
        logger.exception("service %s crashed", type(service).__name__)
        raise
    finally:
        try:
            service.in_shutdown()
        finally:
            stop.set()


def _service(options):
    service_class = load_service(options.name)
    database = open_database(options.zeo)
    stop = threading.Event()
    stopped_by_signal = threading.Event()
    try:
        service = service_class()
        if options.prefetch:
            service.prefetch = options.prefetch
        consumer = make_consumer(
            service, database, options.queue, options.consumer_name
        )

        def request_stop(signal_number, frame):
            logger.info("signal %d: stopping after the current message", signal_number)
            stopped_by_signal.set()
            stop.set()
            service.stop_requested()
            consumer.wake()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        crashed = []

        def serve():
            try:
                run_service(service, consumer, stop)
            except Exception as error:
                crashed.append(error)

        instance_oid, instance_id = _register(
            database, service_class.__name__, consumer.queue
        )

        def shutdown_requested(tid, oids):
            # Only `dispatch shutdown` changes our instance record.
            logger.info("shutdown requested: stopping after the current message")
            stop.set()
            service.stop_requested()
            consumer.wake()

        handle = database.storage.watch(shutdown_requested, oids=[instance_oid])
        thread = threading.Thread(target=serve, name="consumer")
        thread.start()
        print(
            f"service {options.name} ready on queue {consumer.queue} "
            f"(instance {instance_id})",
            flush=True,
        )
        stop.wait()
        consumer.wake()
        thread.join()
        handle.close()
        consumer.close()
        _mark_stopped(database, instance_id)
    finally:
        database.close()
    if crashed and not stopped_by_signal.is_set():
        raise CommandError(f"service crashed: {crashed[0]!r}", EXIT_FAILED)
    return EXIT_OK


def _register(database, service_name, queue):
    """Record this process as a running instance; (its oid, its id)."""
    with dispatch_state(database, write=True) as dispatch:
        instance = admin.register_instance(dispatch, service_name, queue)
    return instance._p_oid, instance.id


def _mark_stopped(database, instance_id):
    with dispatch_state(database, write=True) as dispatch:
        admin.instances_of(dispatch)[instance_id].stopped = time.time()


def service_main(argv):
    """``dispatch service NAME [--queue QUEUE]``."""
    parser = argparse.ArgumentParser(
        prog="dispatch service",
        description="Run a service (entry point group dispatch.services).",
    )
    parser.add_argument("name", metavar="NAME", help="service name or module:Class")
    parser.add_argument("--queue", help="consume this queue instead of the class's")
    parser.add_argument("--consumer-name", help="name recorded in attempts")
    parser.add_argument(
        "--prefetch", type=int, help="messages claimed and committed together"
    )
    add_zeo_option(parser)
    return run_command("service", parser, _service, argv)
