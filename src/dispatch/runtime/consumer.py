"""A consumer of one queue: claim a message, hand it to a service's handler
with a RecipeWrapper, and commit the outcome with the messages it sent.

Several consumers (threads or processes, each with its own connection) may
share a queue: claiming changes the message object, so two consumers that
reach for the same message conflict, one of them aborts and takes the next.
Each consumer has a home shard (see :mod:`dispatch.state.shards`): the messages
it sends are filed there, and once it has lost a race it claims from there
first, so that consumers stop writing to the same trees; a consumer whose
commit conflicts again moves to another shard.
Waiting for work uses zeo's ``ClientStorage.watch()``: every committed
transaction wakes the consumer, which otherwise waits exactly until the
next delayed message or claim lapse is due.

Every transaction a consumer commits goes through one loop
(:func:`dispatch.runtime.retrying.commit_retrying`): on a conflict it is
aborted, counted and applied again, a bounded number of times.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import transaction

from dispatch import logfields
from dispatch.runtime.claiming import Claimer

# Claim conflicts mean another consumer was faster; after CONFLICT_RETRIES
# in a row we report "no message" and let the caller wait for the next
# change.  The names stay importable from here, where they were first.
from dispatch.runtime.retrying import COMMITTED, CONFLICTED, commit_retrying
from dispatch.runtime.retrying import CONFLICT_RETRIES as CONFLICT_RETRIES
from dispatch.runtime.retrying import DECLINED as DECLINED
from dispatch.state import broker, model
from dispatch.state.broker import Send
from dispatch.state.wrapper import RecipeWrapper

logger = logging.getLogger(__name__)

# What a handler is called with: the wrapper and the message's payload.
Handler = Callable[[RecipeWrapper, Any], None]
# A handled message: (message, sends or None if it failed, reason, outcome).
Result = tuple[model.Message, list[Send] | None, str | None, dict[str, Any]]


class Consumer:
    """Hands the messages of *queue* to ``handler(recipe_wrapper, payload)``.

    The handler sends with the wrapper; raising makes the delivery fail
    (the message comes back after a back-off, or is dead-lettered after
    *max_deliveries*).  One message at a time, as a zocalo service (or
    *prefetch* claimed and committed together).  While serving, the next
    claim rides in the commit of the last results (*chain_claims*), so a
    busy consumer commits once per message: it never holds more than
    *prefetch* messages, and it claims them as soon as it is free.
    """

    # Called each time round the serve loop (``dispatch service
    # --liveness``), and at least every liveness_interval seconds when idle.
    liveness: Callable[[], None] | None = None
    liveness_interval = 10.0

    def __init__(
        self,
        database: Any,
        queue: str,
        handler: Handler,
        name: str | None = None,
        lease: float = broker.DEFAULT_LEASE,
        max_deliveries: int = broker.MAX_DELIVERIES,
        backoff_base: float = broker.BACKOFF_BASE,
        prefetch: int = 1,
        chain_claims: bool = True,
    ) -> None:
        self.database = database
        self.queue = queue
        self.handler = handler
        self.name = name or f"{queue}-{threading.get_ident():x}"
        self.lease = lease
        self.max_deliveries = max_deliveries
        self.backoff_base = backoff_base
        self.prefetch = max(1, int(prefetch))
        # Claim the next message(s) in the commit of the last results (one
        # commit per message or batch instead of two); False for handlers
        # that commit on their own while they work.
        self.chain_claims = chain_claims
        self._stop = threading.Event()  # set while serve() is stopping
        self.transaction_manager = transaction.TransactionManager()
        self.connection = database.open(self.transaction_manager)
        self._wake = threading.Event()
        self._carried: list[model.Message] = []  # claimed with the last results
        self.claimer = Claimer(queue, self.name, lease, max_deliveries, backoff_base)
        self._conflicted = self.claimer.conflicted

    @property
    def shard(self) -> int:
        """The home shard: where this consumer files what it sends."""
        return self.claimer.shard

    @property
    def conflicts(self) -> collections.Counter[str]:
        """ConflictErrors met, by phase (claim, complete, release)."""
        return self.claimer.conflicts

    def close(self) -> None:
        """Abort anything open and close the connection."""
        self.transaction_manager.abort()
        self.connection.close()

    def _dispatch(self) -> model.Dispatch:
        # Read only: consumers never create the root object, so that
        # starting a run on a fresh database does not conflict with them.
        found: model.Dispatch | None = self.connection.root().get(model.ROOT_KEY)
        return found or model.Dispatch()

    def _commit_retrying(
        self, work: Callable[[int], bool], on_conflict: Callable[[], None]
    ) -> str:
        """Commit the open transaction with what ``work(retry)`` adds to it
        (see :func:`~dispatch.runtime.retrying.commit_retrying`)."""
        return commit_retrying(self.transaction_manager, work, on_conflict)

    def _claim_some(
        self, now: float, limit: int, retry: int = 0, steal: bool = True
    ) -> list[model.Message]:
        """Claim up to *limit* messages in the open transaction (no commit)."""
        return self.claimer.claim_some(self._dispatch(), now, limit, retry, steal)

    def _claim_conflicted(self, messages: list[model.Message]) -> None:
        logger.debug("%s: claim conflict; trying again", self.name)
        self.claimer.claim_conflicted([m.id for m in messages])

    def _claim(self, now: float, limit: int = 1) -> list[model.Message]:
        """Claim and commit up to *limit* messages (one transaction);
        returns them, an empty list when none is due."""
        claimed: list[model.Message] = []

        def claim(retry: int) -> bool:
            claimed[:] = []
            claimed.extend(self._claim_some(now, limit, retry))
            # Commits lapsed claims released on the way, if any.
            return True

        self.transaction_manager.begin()
        committed = self._commit_retrying(
            claim, lambda: self._claim_conflicted(claimed)
        )
        return claimed if committed == COMMITTED else []

    def process_batch(
        self, limit: int, now: float | None = None, claim_next: bool = False
    ) -> list[model.Message]:
        """Claim up to *limit* messages in one transaction, handle each, and
        commit all their results (and failed deliveries) in one more: the
        broker's prefetch, trading a wider window of redelivery after a
        crash for fewer commits.  Returns the messages handled.

        With *claim_next* (what :meth:`serve` does), the next batch is
        claimed in the transaction that commits this one's results, so a
        busy consumer commits once per batch; it is handled by the next
        call.  A consumer whose :meth:`serve` is stopping claims no more: it
        stops after the messages it holds, as a zocalo service does."""
        moment = time.time() if now is None else now
        messages, self._carried = self._carried, []
        if not messages:
            messages = self._claim(moment, limit)
        if not messages:
            return []
        manager = self.transaction_manager
        manager.begin()
        results = self._handle_all(messages)
        rerun = self._handlers_changed()
        claimed: list[model.Message] = []

        def apply(retry: int) -> bool:
            claimed[:] = []
            if retry and rerun:
                results[:] = self._handle_all(messages)
            self._apply(results, moment)
            if claim_next and not self._stop.is_set():
                # From the home shard only: taking from others, which may
                # conflict, is left to a claim of its own.
                claimed.extend(self._claim_some(time.time(), limit, retry, steal=False))
            return True

        committed = self._commit_retrying(
            apply, lambda: self._completion_conflicted("results of a batch")
        )
        if committed == COMMITTED:
            self._carried = list(claimed)
        else:
            logger.error(
                "%s: could not commit a batch; its claims will lapse", self.name
            )
        return messages

    def _handle_all(self, messages: list[model.Message]) -> list[Result]:
        """Each of *messages* handled in the open transaction (a failed
        handler's changes rolled back to a savepoint)."""
        manager = self.transaction_manager
        return [self._handle(m, manager.savepoint().rollback) for m in messages]

    def _handlers_changed(self) -> bool:
        """True when the handlers changed objects in zeo, besides sending:
        those changes are in the transaction of the transition, so a commit
        that conflicts runs the handlers again (the abort dropped them)."""
        connection = self.connection
        return bool(connection._registered_objects or connection._added)

    def _completion_conflicted(self, what: str) -> None:
        """Count a conflict of a commit of results (*what*, for the log)."""
        self._conflicted("complete")
        logger.info("%s: %s conflicted; applying again", self.name, what)

    def _apply(self, results: list[Result], now: float) -> None:
        """Complete or release the messages of a handled batch."""
        dispatch = self._dispatch()
        for message, sends, reason, outcome in results:
            if not broker.still_claimed_by(message, self.name):
                logger.warning("%s: claim on %r lapsed", self.name, message)
            elif reason is None and sends is not None:
                broker.complete(dispatch, message, sends, now, outcome, self.shard)
            elif reason is not None:
                self._release_in(dispatch, message, reason, now, outcome)

    def process_one(self, now: float | None = None) -> model.Message | None:
        """Handle one deliverable message; returns it, or None if none was
        due.  *now* (seconds since the epoch) is for tests.

        The handler runs once.  Its sends are recorded by the wrapper and
        committed with the message's completion; if that commit conflicts
        (another consumer sent to the same queue at the same moment), the
        completion is applied again, not the handler, unless the handler
        changed objects in zeo: those changes went with the aborted try, so
        the handler runs again and they are committed once, with the
        transition.
        """
        moment = time.time() if now is None else now
        claimed = self._claim(moment)
        if not claimed:
            return None
        message = claimed[0]
        manager = self.transaction_manager
        manager.begin()
        result = self._handle(message, manager.abort)
        rerun = self._handlers_changed()

        def complete(retry: int) -> bool:
            nonlocal result
            if retry and rerun:
                result = self._handle(message, manager.abort)
            if result[1] is None:
                return False  # failed: released below
            if not broker.still_claimed_by(message, self.name):
                logger.warning(
                    "%s: claim on %r lapsed while handling it; result dropped",
                    self.name,
                    message,
                )
                return False
            broker.complete(
                self._dispatch(), message, result[1], moment, result[3], self.shard
            )
            return True

        committed = self._commit_retrying(
            complete, lambda: self._completion_conflicted(f"result of {message!r}")
        )
        _message, sends, reason, noted = result
        if sends is None:
            self._release(message, reason or "handler failed", moment, noted)
        elif committed == CONFLICTED:
            self._release(message, "could not commit its result (conflicts)", moment)
        return message

    def _handle(self, message: model.Message, undo: Callable[[], Any]) -> Result:
        """Hand claimed *message* to the handler in the open transaction;
        ``(message, sends, None, outcome)``, or when the handler raised
        ``(message, None, reason, outcome)`` after ``undo()`` dropped what
        it changed."""
        sends: list[Send] = []
        wrapper = None
        with logfields.message_context(message.run_id, message.node, message.id):
            try:
                wrapper = broker.wrapper_for(self._dispatch(), message, sends)
                self.handler(wrapper, wrapper.payload)
            except Exception as error:
                undo()
                reason, outcome = self._failure(message, wrapper, error)
                return message, None, reason, outcome
        return message, sends, None, wrapper.outcome

    def _failure(
        self, message: model.Message, wrapper: RecipeWrapper | None, error: Exception
    ) -> tuple[str, dict[str, Any]]:
        """``(reason, outcome)`` of a delivery whose handler raised *error*,
        logged: with a traceback, unless it only gave the message back
        (:class:`~dispatch.state.broker.GiveBack`)."""
        outcome = wrapper.outcome if wrapper is not None else {}
        if isinstance(error, broker.GiveBack):
            logger.info("%s: %r given back: %s", self.name, message, error)
            outcome = dict(outcome, given_back=True)
        elif isinstance(error, broker.Reject):
            logger.error("%s: %r rejected: %s", self.name, message, error)
            outcome = dict(outcome, rejected=True)
        else:
            logger.exception("%s: handling %r failed", self.name, message)
        return f"{type(error).__name__}: {error}", outcome

    def _release_in(
        self,
        dispatch: model.Dispatch,
        message: model.Message,
        reason: str,
        now: float,
        outcome: dict[str, Any] | None,
    ) -> None:
        """:func:`broker.release` of a failed delivery with what its
        handler noted (*outcome*: exit code, output tail, given back)."""
        noted = outcome or {}
        broker.release(
            dispatch,
            message,
            reason,
            now=now,
            max_deliveries=0 if noted.get("rejected") else self.max_deliveries,
            backoff_base=self.backoff_base,
            exit_code=noted.get("exit_code"),
            output_tail=noted.get("output_tail"),
            given_back=noted.get("given_back", False),
        )

    def _release(
        self,
        message: model.Message,
        reason: str,
        now: float,
        outcome: dict[str, Any] | None = None,
    ) -> None:
        """Give a failed delivery back (its own transaction, retried)."""

        def release(retry: int) -> bool:
            if not broker.still_claimed_by(message, self.name):
                return False
            self._release_in(self._dispatch(), message, reason, now, outcome)
            return True

        self.transaction_manager.begin()
        if (
            self._commit_retrying(
                release, lambda: self._conflicted("release", move=False)
            )
            == CONFLICTED
        ):
            logger.error(
                "%s: could not release %r; its claim will lapse", self.name, message
            )

    def next_due(self) -> float | None:
        """Seconds until something on our queue needs attention (a delayed
        message, a lapsing claim; 0 if now), or None if nothing is there."""
        manager = self.transaction_manager
        manager.begin()
        try:
            queue = self._dispatch().queues.get(self.queue)
            if queue is None or not queue.ready:
                return None
            key = queue.ready.minKey()
        finally:
            manager.abort()
        return max(0.0, model.ready_time(key) - time.time())

    def serve(self, stop: threading.Event) -> None:
        """Process messages until threading.Event *stop* is set, waiting for
        commits (zeo ``watch``) or the next due time in between."""
        handle = self.database.storage.watch(lambda tid, oids: self._wake.set())
        self._stop = stop
        try:
            while not stop.is_set():
                self._wake.clear()
                self._beat()
                while not stop.is_set() and self._process_some():
                    self._beat()
                if stop.is_set():
                    break
                self._wake.wait(self._idle_wait())
            if self._carried:  # claimed already: handle them, claim no more
                self.process_batch(self.prefetch)
        finally:
            handle.close()
            self._stop = threading.Event()  # a later serve() starts afresh

    def _beat(self) -> None:
        """Tell :attr:`liveness` (if set) that the loop goes round."""
        if self.liveness is not None:
            self.liveness()

    def _idle_wait(self) -> float | None:
        """How long an idle loop waits: until something is due, but with a
        :attr:`liveness` at most :attr:`liveness_interval`, so it beats."""
        due = self.next_due()
        if self.liveness is None:
            return due
        return (
            self.liveness_interval if due is None else min(due, self.liveness_interval)
        )

    def _process_some(self) -> bool:
        """One message, or a batch of ``prefetch``; true if any was due."""
        if self.prefetch > 1 or self.chain_claims:
            return bool(self.process_batch(self.prefetch, claim_next=self.chain_claims))
        return self.process_one() is not None

    def wake(self) -> None:
        """Interrupt :meth:`serve`'s wait (used to stop it promptly)."""
        self._wake.set()
