"""``ZeoTransport``: a python-workflows transport on dispatch's queues in zeo.

Registered in the entry-point group ``workflows.transport`` as ``zeo``, so
that an unchanged ``CommonService`` runs with ``zocalo.service -s NAME -t
zeo --zeo HOST:PORT`` (or ``$DISPATCH_ZEO``).  What a message becomes in
dispatch state is :mod:`dispatch.state.transport`'s business; this module
maps workflows' calls onto it:

- a subscription claims messages of its queue in a thread of the transport
  (one claim at a time per subscription in acknowledgement mode, until the
  message is acked or nacked) and hands them to the service's callback;
  without acknowledgement a message is finished as it is handed over;
- ``ack`` finishes the claimed message, ``nack`` releases it (delivered
  again after a back-off, dead-lettered after the broker's delivery limit),
  and the same commit claims the subscription's next message;
- ``transaction_begin`` collects acks, nacks, sends and broadcasts, which
  ``transaction_commit`` applies in one zeo commit and
  ``transaction_abort`` drops (a message acked in it is delivered again);
- a broadcast is copied to each durable subscription of its topic (a
  ``subscribe_broadcast(..., durable=NAME)`` is consumed as a queue) and
  logged for the non-durable subscribers listening now.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import transaction
from workflows.transport.common_transport import CommonTransport, json_serializer
from ZODB.POSException import ConflictError

from dispatch.runtime.claiming import Claimer
from dispatch.state import broker, model, topics
from dispatch.state import transport as messages
from dispatch.state.database import ADDRESS_VARIABLE, dispatch_state
from dispatch.workflows import options

logger = logging.getLogger(__name__)

# Seconds between looks at an idle queue or topic.
DEFAULT_POLL = 0.2
# Tries of a commit that conflicts with another consumer's.
COMMIT_TRIES = 10

Operation = Callable[[model.Dispatch], None]


class ZeoTransport(CommonTransport):
    """A python-workflows transport whose broker is dispatch state in zeo."""

    # Class-wide, as workflows' other transports: command-line options set
    # them before the frontend makes the service's transport.
    config: dict[str, Any] = {}
    defaults: dict[str, Any] = {"--zeo": None, "--zeo-poll": DEFAULT_POLL}

    def __init__(self, middleware: Any = None) -> None:
        super().__init__(middleware=middleware)
        self._database: Any = None
        self._watch: Any = None
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._queues: dict[int, dict[str, Any]] = {}
        self._topics: dict[int, dict[str, Any]] = {}
        self._held: dict[str, tuple[int, str]] = {}  # message id -> (sub, run id)
        self._open: dict[int, list[Operation]] = {}
        self._settled_in: dict[int, list[str]] = {}  # transaction -> message ids
        # Claimed in a commit that settled another message, not handed over yet.
        self._ready: list[tuple[int, dict[str, Any], Any]] = []
        self._transaction_numbers = itertools.count(1)
        self.consumer = f"workflows-{os.getpid()}-{id(self):x}"

    # -- configuration --------------------------------------------------

    @classmethod
    def setting(cls, name: str) -> Any:
        return cls.config.get(name, cls.defaults.get(name))

    @classmethod
    def add_command_line_options(cls, parser: Any) -> None:
        """``--zeo HOST:PORT`` and ``--zeo-poll SECONDS`` (argparse or optparse)."""
        options.add_options(parser, cls.config, DEFAULT_POLL)

    # -- connection -----------------------------------------------------

    def connect(self) -> bool:
        if self._database is not None:
            return True
        address = self.setting("--zeo") or os.environ.get(ADDRESS_VARIABLE)
        if not address:
            logger.error(
                "say which zeo server: --zeo HOST:PORT or set $%s", ADDRESS_VARIABLE
            )
            return False
        import zeo
        from zeo.address import parse_address

        try:
            self._database = zeo.DB(parse_address(address), wait_timeout=30)
        except Exception as error:
            logger.error("cannot reach zeo at %s: %s", address, error)
            return False
        # Every commit, by any process, wakes the delivery loop (a message
        # for us may have come); --zeo-poll is the fallback for due times.
        self._watch = self._database.storage.watch(lambda tid, oids: self._wake.set())
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._deliver_loop, name="zeo-transport", daemon=True
        )
        self._thread.start()
        return True

    def is_connected(self) -> bool:
        return self._database is not None and not self._stop.is_set()

    def disconnect(self) -> None:
        if self._database is None:
            return
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            held = list(self._held.items())
            self._held.clear()
        if held:
            self._apply(
                [
                    self._give_back(message_id, run_id)
                    for message_id, (_s, run_id) in held
                ]
            )
        self._watch.close()
        self._database.close()
        self._database = None

    # -- zeo transactions ----------------------------------------------

    def _apply(self, operations: list[Operation]) -> None:
        """Run *operations* on dispatch state in one commit, retried on conflict."""
        for attempt in range(1, COMMIT_TRIES + 1):
            manager = transaction.TransactionManager()
            connection = self._database.open(manager)
            try:
                manager.begin()
                dispatch = broker.get_dispatch(connection.root())
                for operation in operations:
                    operation(dispatch)
                manager.commit()
                return
            except ConflictError:
                manager.abort()
                if attempt == COMMIT_TRIES:
                    raise
            except BaseException:
                manager.abort()
                raise
            finally:
                connection.close()

    def _now_or_later(self, operation: Operation, transaction_id: int | None) -> None:
        if transaction_id is None:
            self._apply([operation])
            return
        with self._lock:
            if transaction_id not in self._open:
                raise messages.BadMessage(f"transaction {transaction_id} is not open")
            self._open[transaction_id].append(operation)

    # -- subscriptions --------------------------------------------------

    def _subscribe(
        self, sub_id: int, channel: str, callback: Any, **kwargs: Any
    ) -> None:
        acknowledgement = bool(kwargs.get("acknowledgement"))
        with self._lock:
            self._queues[sub_id] = {
                "queue": channel,
                "ack": acknowledgement,
                "prefetch": int(kwargs.get("prefetch_count") or 1),
                "held": 0,
                "claimer": Claimer(channel, self.consumer),
            }
        self._wake.set()

    def _subscribe_temporary(
        self, sub_id: int, channel_hint: str | None, callback: Any, **kwargs: Any
    ) -> str:
        channel = f"transient.{channel_hint or 'queue'}.{model.new_id()}"
        self._subscribe(sub_id, channel, callback, **kwargs)
        return channel

    def _subscribe_broadcast(
        self, sub_id: int, channel: str, callback: Any, **kwargs: Any
    ) -> None:
        """``durable=NAME``: the durable subscription NAME on topic *channel*
        (made if missing), consumed as a queue (``acknowledgement``,
        ``prefetch_count`` as for :meth:`subscribe`); without it, what is
        broadcast while the subscription lasts."""
        durable = kwargs.get("durable")
        if durable:
            queue = topics.subscription_queue(channel, durable)

            def register(dispatch: model.Dispatch) -> None:
                topics.subscribe(dispatch, channel, durable)

            self._apply([register])
            self._subscribe(sub_id, queue, callback, **kwargs)
            with self._lock:
                self._queues[sub_id]["durable"] = (channel, durable)
            return
        with self._lock:
            self._topics[sub_id] = {
                "topic": channel,
                "after": messages.listening_from(),
            }
        self._wake.set()

    def _unsubscribe(self, sub_id: int, **kwargs: Any) -> None:
        """``delete=True`` also deletes a durable subscription (its pending
        copies are cancelled); otherwise its copies wait for it."""
        with self._lock:
            found = self._queues.pop(sub_id, None) or {}
            self._topics.pop(sub_id, None)
        if kwargs.get("delete") and found.get("durable"):
            topic, name = found["durable"]

            def delete(dispatch: model.Dispatch) -> None:
                topics.unsubscribe(dispatch, topic, name)

            self._apply([delete])

    # -- sending --------------------------------------------------------

    def _send(
        self,
        destination: str,
        message: Any,
        headers: dict[str, Any] | None = None,
        delay: float | None = None,
        transaction: int | None = None,
        **kwargs: Any,
    ) -> None:
        body = json.loads(message) if isinstance(message, str) else message

        def file(dispatch: model.Dispatch) -> None:
            messages.send(dispatch, destination, headers, body, delay)

        self._now_or_later(file, transaction)
        self._wake.set()

    def _broadcast(
        self,
        destination: str,
        message: Any,
        headers: dict[str, Any] | None = None,
        transaction: int | None = None,
        **kwargs: Any,
    ) -> None:
        body = json.loads(message) if isinstance(message, str) else message

        def post(dispatch: model.Dispatch) -> None:
            messages.broadcast(dispatch, destination, headers, body)

        self._now_or_later(post, transaction)

    def broadcast_status(self, status: dict[str, Any]) -> None:
        """Status of the service, on topic ``transient.status`` as workflows'
        own transports do."""
        self._broadcast(
            messages.STATUS_TOPIC, json.dumps(status, default=json_serializer)
        )

    # -- acknowledgement ------------------------------------------------

    def _settle(self, message_id: str, outcome: str) -> Operation:
        with self._lock:
            found = self._held.get(message_id)
        if found is None:
            raise messages.BadMessage(
                f"message {message_id} is not held by this transport (acked already?)"
            )
        sub_id, run_id = found

        def settle(dispatch: model.Dispatch) -> None:
            # An acknowledged topic copy leaves its run (dispatch.state.topics).
            message = dispatch.runs[run_id].messages.get(message_id)
            if message is None or not broker.still_claimed_by(message, self.consumer):
                logger.warning(
                    "%r: claim lapsed before the %s; not changed", message, outcome
                )
            elif outcome == "ack":
                broker.finish(dispatch, message)
            elif outcome == "nack":
                broker.release(dispatch, message, "rejected (nack) by the service")
            else:
                broker.release(
                    dispatch, message, "its transaction was aborted", backoff_base=0
                )
            self._forget(message_id)

        return settle

    def _give_back(self, message_id: str, run_id: str) -> Operation:
        def give_back(dispatch: model.Dispatch) -> None:
            message = dispatch.runs[run_id].messages.get(message_id)
            if message is not None and broker.still_claimed_by(message, self.consumer):
                broker.release(
                    dispatch,
                    message,
                    "transport disconnected",
                    "given back",
                    given_back=True,
                )

        return give_back

    def _forget(self, message_id: str) -> None:
        with self._lock:
            found = self._held.pop(message_id, None)
            if found is not None and found[0] in self._queues:
                self._queues[found[0]]["held"] -= 1
        self._wake.set()

    def _ack(self, message_id: str, subscription_id: int, **kwargs: Any) -> None:
        self._settle_now_or_later(message_id, "ack", kwargs.get("transaction"))

    def _nack(self, message_id: str, subscription_id: int, **kwargs: Any) -> None:
        self._settle_now_or_later(message_id, "nack", kwargs.get("transaction"))

    def _settle_now_or_later(
        self, message_id: str, outcome: str, transaction_id: int | None
    ) -> None:
        settle = self._settle(message_id, outcome)
        if transaction_id is None:
            self._apply_claiming_next([settle], [message_id])
            return
        self._now_or_later(settle, transaction_id)
        with self._lock:
            self._settled_in.setdefault(transaction_id, []).append(message_id)

    def _apply_claiming_next(
        self, operations: list[Operation], settled: list[str]
    ) -> None:
        """Apply *operations*, which settle *settled*, and claim the next
        message of their subscriptions in the same commit, in room kept from
        the start (so the delivery thread, which hands it over, claims no
        more meanwhile): one commit per message instead of two."""
        with self._lock:
            subscriptions = sorted(
                {self._held[m][0] for m in settled if m in self._held}
            )
            self._reserve(subscriptions, 1)
        claims = [self._taker(sub_id) for sub_id in subscriptions]
        try:
            self._apply(operations + [take for take, _found in claims])
        except BaseException:
            with self._lock:
                self._reserve(subscriptions, -1)
            raise
        for sub_id, (_take, found) in zip(subscriptions, claims, strict=True):
            handed = self._hold(sub_id, found, reserved=True)
            with self._lock:
                self._ready.extend(handed)
        self._wake.set()

    def _reserve(self, subscriptions: list[int], count: int) -> None:
        for sub_id in subscriptions:
            if sub_id in self._queues:
                self._queues[sub_id]["held"] += count

    # -- transactions ---------------------------------------------------

    def _transaction_begin(self, transaction_id: int, **kwargs: Any) -> None:
        with self._lock:
            self._open[transaction_id] = []

    def _transaction_abort(self, transaction_id: int, **kwargs: Any) -> None:
        """Drop what the transaction collected; a message acked or nacked in
        it is released at once, to be delivered again (it counts as a
        delivery, so a service that always aborts dead-letters it)."""
        with self._lock:
            self._open.pop(transaction_id, None)
            settled = self._settled_in.pop(transaction_id, [])
        if settled:
            self._apply([self._settle(message_id, "abort") for message_id in settled])

    def _transaction_commit(self, transaction_id: int, **kwargs: Any) -> None:
        with self._lock:
            operations = self._open.pop(transaction_id, [])
            settled = self._settled_in.pop(transaction_id, [])
        self._apply_claiming_next(operations, settled)

    # -- delivery -------------------------------------------------------

    @staticmethod
    def _mangle_for_sending(message: Any) -> str:
        return json.dumps(message, default=json_serializer)

    @staticmethod
    def _mangle_for_receiving(message: Any) -> Any:
        return json.loads(message)

    def _deliver_loop(self) -> None:
        poll = float(self.setting("--zeo-poll") or DEFAULT_POLL)
        while not self._stop.is_set():
            try:
                delivered = self._deliver_once()
            except Exception:
                logger.exception("zeo transport: delivery failed; trying again")
                delivered = 0
            if not delivered:
                self._wake.wait(poll)
                self._wake.clear()

    def _deliver_once(self) -> int:
        with self._lock:
            queues = [(s, dict(q)) for s, q in self._queues.items()]
            topics = [(s, dict(t)) for s, t in self._topics.items()]
            handed, self._ready = self._ready, []
        for sub_id, subscription in queues:
            if subscription["ack"] and subscription["held"] >= subscription["prefetch"]:
                continue
            take, found = self._taker(sub_id)
            self._apply([take])
            handed.extend(self._hold(sub_id, found))
        for sub_id, subscription in topics:
            handed.extend(self._read_topic(sub_id, subscription))
        for sub_id, header, body in handed:
            if self._stop.is_set():
                break
            self.subscription_callback(sub_id)(header, json.dumps(body))
        return len(handed)

    def _taker(self, sub_id: int) -> tuple[Operation, list[Any]]:
        """An operation claiming the next message of subscription *sub_id*
        (whose room for it the caller made sure of), and the list it leaves
        the claim in."""
        found: list[Any] = []
        # What each try so far claimed (a message id or None): the objects
        # belong to a connection closed with its conflicted commit.
        tries: list[str | None] = []

        def take(dispatch: model.Dispatch) -> None:
            found.clear()
            with self._lock:
                subscription = self._queues.get(sub_id)
                if subscription is None:
                    return
                subscription = dict(subscription)
            claimer: Claimer = subscription["claimer"]
            if tries:  # the last try's commit conflicted
                claimer.claim_conflicted([i for i in tries[-1:] if i is not None])
            claimed = claimer.claim_some(dispatch, time.time(), 1, retry=len(tries))
            message = claimed[0] if claimed else None
            tries.append(message.id if message is not None else None)
            if message is None:
                return
            header, body = messages.delivery(dispatch, message, sub_id)
            if not subscription["ack"]:
                broker.finish(dispatch, message)
            found.append(
                (message.id, message.run_id, header, body, subscription["ack"])
            )

        return take, found

    def _hold(self, sub_id: int, found: list[Any], reserved: bool = False) -> list[Any]:
        """After a claim's commit: the deliveries to hand over, acknowledged
        ones held until settled (in room *reserved*, unused room given back)."""
        with self._lock:
            kept = bool(found) and found[0][4]  # an acknowledged one is held
            if sub_id in self._queues:
                self._queues[sub_id]["held"] += int(kept) - int(reserved)
            if kept:
                self._held[found[0][0]] = (sub_id, found[0][1])
        if not found:
            return []
        _message_id, _run_id, header, body, _acknowledged = found[0]
        return [(sub_id, header, body)]

    def _read_topic(self, sub_id: int, subscription: dict[str, Any]) -> list[Any]:
        with dispatch_state(self._database) as dispatch:
            entries = messages.broadcasts_after(
                dispatch, subscription["topic"], subscription["after"]
            )
        if not entries:
            return []
        with self._lock:
            if sub_id in self._topics:
                self._topics[sub_id]["after"] = entries[-1][0]
        return [(sub_id, header, body) for _key, header, body in entries]
