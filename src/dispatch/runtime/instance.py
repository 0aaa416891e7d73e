"""One running service instance: what ``dispatch service NAME`` does.

The instance is recorded in zeo (so ``dispatch shutdown`` can find it), its
consumer serves in a thread of its own, and it stops between messages when
asked: by a signal (the caller passes it on to :meth:`Instance.stop`) or by
a change of its record (``dispatch shutdown``), watched through zeo.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from dispatch.runtime.service import Service, make_consumer, run_service
from dispatch.runtime.yamlconfig import SiteConfiguration
from dispatch.state import admin
from dispatch.state.database import dispatch_state, ensure_run_index

logger = logging.getLogger(__name__)

# Seconds between heartbeats: one small commit per instance each time, so
# 100 instances write 5 a second, and each commit also wakes every idle
# consumer (they watch all commits) for one empty claim; `dispatch status
# --within` (60 s by default) calls an instance stale after 2 missed beats.
HEARTBEAT_INTERVAL = 20.0


class Instance:
    """A service instance on *database*, ready to :meth:`serve`."""

    def __init__(
        self,
        service_class: type[Service],
        database: Any,
        queue: str | None = None,
        consumer_name: str | None = None,
        prefetch: int | None = None,
        config: SiteConfiguration | None = None,
    ) -> None:
        self.service_class = service_class
        self.database = database
        self.service = service_class()
        self.service.config = config or SiteConfiguration()
        if prefetch:
            self.service.prefetch = prefetch
        self.consumer = make_consumer(self.service, database, queue, consumer_name)
        self.stopping = threading.Event()
        # What made serve() end early: the service's exception, if any.
        self.crash: BaseException | None = None
        self.instance_id: str | None = None
        self.heartbeat_interval = HEARTBEAT_INTERVAL

    @property
    def queue(self) -> str:
        return self.consumer.queue

    def stop(self, why: str) -> None:
        """Stop after the current message (any thread, or a signal handler)."""
        logger.info("%s: stopping after the current message", why)
        self.stopping.set()
        self.service.stop_requested()
        self.consumer.wake()

    def _serve(self) -> None:
        try:
            run_service(self.service, self.consumer, self.stopping)
        except Exception as error:
            self.crash = error

    def _beat(self) -> None:
        """Record a heartbeat (a failure is logged: the service goes on)."""
        try:
            with dispatch_state(self.database, write=True) as dispatch:
                admin.beat(dispatch, str(self.instance_id))
        except Exception as error:
            logger.warning("heartbeat not recorded: %s", error)

    def serve(self, ready: Any = None) -> None:
        """Record the instance, serve until asked to stop (or the service
        crashes), then mark it stopped; calls ``ready(instance)`` once it
        serves."""
        ensure_run_index(self.database)
        with dispatch_state(self.database, write=True) as dispatch:
            record = admin.register_instance(
                dispatch, self.service_class.__name__, self.queue
            )
        instance_oid, self.instance_id = record._p_oid, record.id
        # Only `dispatch shutdown` changes our instance record.
        handle = self.database.storage.watch(
            lambda tid, oids: self.stop("shutdown requested"), oids=[instance_oid]
        )
        thread = threading.Thread(target=self._serve, name="consumer")
        thread.start()
        if ready is not None:
            ready(self)
        while not self.stopping.wait(self.heartbeat_interval):
            self._beat()
        self.consumer.wake()
        thread.join()
        handle.close()
        self.consumer.close()
        with dispatch_state(self.database, write=True) as dispatch:
            record = admin.instances_of(dispatch)[self.instance_id]
            admin.mark_stopped(dispatch, record)
