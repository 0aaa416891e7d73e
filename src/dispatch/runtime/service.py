"""Services: long-running consumers of a queue, as zocalo's CommonService.

A service is a class with a ``queue`` and a ``handle(recipe_wrapper,
payload)`` method, registered under the entry-point group
``dispatch.services`` (or named as ``module:Class``).  ``dispatch service
NAME`` runs one instance; several instances may share a queue.  It waits for
work with zeo's ``watch()`` and stops cleanly on SIGTERM or SIGINT, between
messages (a message being handled is finished first; see
:mod:`dispatch.runtime.instance`).
"""

from __future__ import annotations

import importlib
import logging
import threading
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from dispatch.errors import EXIT_USAGE, CommandError
from dispatch.runtime.consumer import Consumer
from dispatch.runtime.yamlconfig import SiteConfiguration
from dispatch.state import broker, topics
from dispatch.state.database import dispatch_state
from dispatch.state.wrapper import RecipeWrapper

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "dispatch.services"


class Service:
    """Base class of services: set ``queue``, override :meth:`handle`.

    Raising in :meth:`handle` makes the delivery fail: the message comes
    back after a back-off and becomes a dead letter after
    ``max_deliveries``.
    """

    queue: str | None = None
    # Or a topic: the instance consumes the copies of the durable
    # subscription ``subscription`` (default: the class name) on it, so
    # each subscribing service gets every message (dispatch.state.topics).
    topic: str | None = None
    subscription: str | None = None
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
    consumer: Consumer | None = None
    # The site configuration (``dispatch service -C FILE -e ENV``; as
    # zocalo's ``CommonService.config``): ``self.config.storage`` holds the
    # values of the YAML file's ``storage`` sections.  Set per instance.
    config: SiteConfiguration = SiteConfiguration()

    def initializing(self) -> None:
        """Called once before the first message (open resources here)."""

    def handle(self, recipe_wrapper: RecipeWrapper, payload: Any) -> None:
        """Handle one message; send on with ``recipe_wrapper.send*``."""
        raise NotImplementedError

    def in_shutdown(self) -> None:
        """Called once after the last message."""

    def stop_requested(self) -> None:
        """Called (from another thread, or a signal handler) when the
        instance is asked to stop; the current message is finished first
        unless the service does something about it here."""


def known_services() -> dict[str, EntryPoint]:
    """``{name: entry point}`` of the ``dispatch.services`` group."""
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def load_service(name: str) -> type[Service]:
    """The service class for *name*: ``module:Class``, or an entry point
    matched exactly, case-insensitively, or by a unique prefix (as
    ``zocalo.service -s``)."""
    if ":" in name:
        module_name, _, class_name = name.partition(":")
        try:
            found: type[Service] = getattr(
                importlib.import_module(module_name), class_name
            )
            return found
        except (ImportError, AttributeError) as error:
            raise CommandError(f"cannot load service {name}: {error}", EXIT_USAGE)
    services = known_services()
    folded = {key.lower(): key for key in services}
    chosen = None
    matches = [key for key in services if key.lower().startswith(name.lower())]
    if name in services:
        chosen = name
    elif name.lower() in folded:
        chosen = folded[name.lower()]
    elif len(matches) == 1:
        chosen = matches[0]
    if chosen is not None:
        loaded: type[Service] = services[chosen].load()
        return loaded
    known = ", ".join(sorted(services)) or "none registered"
    reason = "is ambiguous" if matches else "is not known"
    raise CommandError(
        f"service {name!r} {reason} (known services: {known}; or give module:Class)",
        EXIT_USAGE,
    )


def make_consumer(
    service: Service, database: Any, queue: str | None = None, name: str | None = None
) -> Consumer:
    """The :class:`Consumer` that feeds *service* (an instance): of its
    *queue* (default ``service.queue``), else of its subscription on
    ``service.topic`` (made now if missing)."""
    queue = queue or service.queue or subscribe(service, database)
    if not queue:
        raise CommandError(
            f"{type(service).__name__} names no queue or topic", EXIT_USAGE
        )
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


def subscribe(service: Service, database: Any) -> str | None:
    """The queue of *service*'s durable subscription on its ``topic``
    (registered in a commit of its own), or None if it names no topic."""
    if not service.topic:
        return None
    name = service.subscription or type(service).__name__
    try:
        with dispatch_state(database, write=True) as dispatch:
            found = topics.subscribe(dispatch, service.topic, name)
    except topics.TopicError as error:
        raise CommandError(f"{type(service).__name__}: {error}", EXIT_USAGE) from None
    logger.info("subscription %s on topic %s", name, service.topic)
    return found.queue


def run_service(service: Service, consumer: Consumer, stop: threading.Event) -> None:
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
