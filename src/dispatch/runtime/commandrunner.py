"""The service that runs ``command`` steps through papa.

A recipe step with ``"command": [program, args...]`` and no queue of its
own waits on ``dispatch.commands``; ``dispatch service CommandRunner`` (or
``dispatch.runtime.commandrunner:CommandRunner``) takes each such message, has the
papa kernel start the program (as a Slurm job when the step has
``"slurm": {...}``), follows its output to the end and records the exit code,
the program's pid or Slurm job id and the last lines of output in the
attempt.

Exit status 0 sends ``{"exit_code", "output_tail"}`` on the step's unnamed
output and on its ``success`` channel.  Any other status fails the delivery
(so it is retried with back-off, and dead-lettered after five), keeping the
exit code and output tail in the attempt for ``dispatch show``.

No program is orphaned or run twice (see :mod:`dispatch.state.programs`): the papa
name comes from the message, so a runner given a message again after its
predecessor died adopts the program still running (or its exit code, kept
by papa until acknowledged, which happens only after it is committed in
zeo).  While it follows a program a runner renews its claim, so a job may
run for days.  A runner asked to stop (SIGTERM, ``dispatch shutdown``)
leaves its program running and gives the message back, to be adopted.  When the
message's run is cancelled, or the message is dead-lettered, while the
program runs, the program is cancelled (``scancel`` for a Slurm job).

The kernel is ``$DISPATCH_PAPA`` (see :mod:`dispatch.runtime.kernel`).
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import threading
import time
from typing import Any, NoReturn

from dispatch.runtime.consumer import Consumer
from dispatch.runtime.kernel import PAPA_VARIABLE, papa_address
from dispatch.runtime.program_ends import (
    UNKNOWN_EXIT_CODE,
    CommandFailed,
    KernelLost,
    ProgramCancelled,
    ProgramLeftRunning,
    ProgramVanished,
    describe_end,
    drop_watch,
)
from dispatch.runtime.retrying import COMMITTED, CONFLICTED, DECLINED, commit_retrying
from dispatch.runtime.service import Service
from dispatch.state import broker, model, programs
from dispatch.state.database import sync_with_server
from dispatch.state.programs import OUTPUT_TAIL_BYTES, output_tail
from dispatch.state.steps import COMMAND_QUEUE
from dispatch.state.wrapper import RecipeWrapper

logger = logging.getLogger(__name__)

# Named here too, where they always were.
__all__ = [
    "OUTPUT_TAIL_BYTES",
    "PAPA_VARIABLE",
    "UNKNOWN_EXIT_CODE",
    "CommandFailed",
    "CommandRunner",
    "KernelLost",
    "ProgramCancelled",
    "ProgramLeftRunning",
    "ProgramVanished",
    "describe_end",
    "drop_watch",
    "output_tail",
    "papa_address",
]
# A runner renews its claim every third of a lease while it follows a
# program, so a program may run for days; the claim of a runner that died
# lapses within a lease (the message then goes to another runner, which
# adopts the program).  Under ``dispatch supervise`` a dead runner's claims
# are released at once instead.
COMMAND_LEASE = 600.0
RENEW_FRACTION = 1 / 3
# While a program writes, its output tail is committed into the attempt at
# most this often (seconds): ``dispatch show`` shows it while it runs, and a
# runner that adopts the program after its follower died starts from it.
TAIL_NOTE_INTERVAL = 5.0
# Commits of the program record and of claim renewals, tried again at once
# when they conflict.
COMMIT_RETRIES = 10


class CommandRunner(Service):
    """Runs each ``command`` step's program through the papa kernel."""

    queue = COMMAND_QUEUE
    lease = COMMAND_LEASE
    # The attempt's program record is committed while the program runs,
    # which a batch of several messages in one transaction cannot allow.
    batchable = False

    def __init__(self) -> None:
        # Written to wake a runner following a program: a stop request, or
        # a commit that changed its message or run (zeo watch).
        self._wake_read, writer = os.pipe()
        os.set_blocking(writer, False)
        self._wake_write: int | None = writer  # None once shut down
        self._wake_lock = threading.Lock()
        self._stopping = threading.Event()

    def initializing(self) -> None:
        self._sweep()

    def in_shutdown(self) -> None:
        with self._wake_lock:
            descriptors, self._wake_write = (self._wake_read, self._wake_write), None
        for descriptor in descriptors:
            if descriptor is not None:
                os.close(descriptor)

    def stop_requested(self) -> None:
        """Stop following the current program (it goes on running, to be
        adopted) and give its message back."""
        self._stopping.set()
        self._poke()

    def _poke(self, *_arguments: object) -> None:
        with self._wake_lock:
            if self._wake_write is None:
                return  # shut down
            try:
                os.write(self._wake_write, b"x")
            except BlockingIOError:
                pass  # poked already, not yet read

    # -- zeo, through the consumer's connection ------------------------------

    @property
    def _fed_by(self) -> Consumer:
        """The consumer feeding this runner (set by make_consumer first)."""
        if self.consumer is None:
            raise RuntimeError("a CommandRunner serves through make_consumer()")
        return self.consumer

    def _dispatch(self) -> Any:
        """Dispatch state as of now (a new transaction of the consumer);
        None in a database where no run ever started."""
        self._fed_by.transaction_manager.begin()
        return self._fed_by.connection.root().get(model.ROOT_KEY)

    def _message(self, recipe_wrapper: RecipeWrapper) -> model.Message:
        run = self._dispatch().runs[recipe_wrapper.environment["ID"]]
        return run.messages[recipe_wrapper.message_id]

    def _note(self, recipe_wrapper: RecipeWrapper, **fields: Any) -> bool:
        """Commit *fields* into the program record of the current attempt,
        so they outlive this runner; False when they could not be (the
        message is no longer ours, or commits kept conflicting)."""

        def note(retry: int) -> bool:
            message = self._message(recipe_wrapper)
            if not broker.still_claimed_by(message, self._fed_by.name):
                return False
            programs.note_program(message.attempts[-1], **fields)
            return True

        outcome = commit_retrying(
            self._fed_by.transaction_manager, note, tries=COMMIT_RETRIES
        )
        if outcome == CONFLICTED:
            logger.warning("%r: program record not saved (conflicts)", recipe_wrapper)
        return outcome == COMMITTED

    def _sweep(self) -> None:
        """Stop and forget programs whose message is finished (see
        :func:`dispatch.state.programs.sweep`): done when a runner starts and
        before each message it takes."""
        if self.consumer is None:
            return
        import papa

        try:
            dispatch = self._dispatch()
            if dispatch is not None:
                with papa.Papa(papa_address()) as kernel:
                    programs.sweep(kernel, dispatch, papa.Error)
        except papa.Error as error:
            logger.warning("no papa kernel to clean up step programs: %s", error)
        finally:
            self._fed_by.transaction_manager.abort()

    # -- one message ---------------------------------------------------------

    def handle(self, recipe_wrapper: RecipeWrapper, payload: Any) -> None:
        import papa

        self._sweep()
        run_id = recipe_wrapper.environment.get("ID", "run")
        name = programs.program_name(
            run_id, recipe_wrapper.recipe_pointer, recipe_wrapper.message_id
        )
        try:
            with papa.Papa(papa_address()) as kernel:
                info, exit_code, tail, cancelled, slurm_state = self._run(
                    kernel, papa, name, recipe_wrapper
                )
        except (papa.Error, ConnectionError) as error:
            # A kernel killed while our request sat unread in its socket
            # resets the connection instead of closing it.
            lost = (
                error if isinstance(error, papa.Error) else f"Lost connection ({error})"
            )
            raise KernelLost(
                f"papa kernel {papa_address() or 'default'}: {lost} (while "
                f"running {name}; the program is left as it is)"
            ) from error
        slurm_job = info.get("slurm_job") if info else None
        recipe_wrapper.record(
            exit_code=exit_code, output_tail=tail, slurm_job=slurm_job
        )
        if cancelled:
            raise ProgramCancelled(
                f"program {name} cancelled ({describe_end(exit_code, slurm_state)})"
                ": its message was cancelled or dead-lettered"
            )
        if exit_code != 0:
            raise CommandFailed(exit_code, tail, slurm_state)
        result = {"exit_code": exit_code, "output_tail": tail}
        recipe_wrapper.send(result)
        recipe_wrapper.send_to("success", result)

    def _run(
        self, kernel: Any, papa: Any, name: str, recipe_wrapper: RecipeWrapper
    ) -> tuple[Any, int, str, bool, str | None]:
        """Adopt, or start, the program and follow it to its end; ``(its
        entry, exit code, output tail, cancelled, Slurm state)``."""
        slurm_state = None
        info = kernel.list_processes(name).get(name)
        # What an earlier runner committed before papa forgot the program
        # (it acknowledges the end only after its commit) must be seen now:
        # a round trip to zeo brings every invalidation sent before it.
        sync_with_server(self._fed_by.database)
        message = self._message(recipe_wrapper)
        seed = programs.earlier_output(message, name)
        known = programs.unsettled_result(message, name)
        if info is None and known is not None:
            exit_code, tail = known
            logger.info(
                "%s ended already (seen and committed): status %s", name, exit_code
            )
            cancelled = False
            self._note(recipe_wrapper, name=name, exit_code=exit_code)
        else:
            adopted = info is not None
            if adopted:
                logger.info("%s still known to papa: adopting it", name)
            else:
                self._may_start(name, message)
                info, adopted = self._start(
                    kernel, papa, name, recipe_wrapper.recipe_step, recipe_wrapper
                )
            self._note(
                recipe_wrapper,
                name=name,
                pid=info.get("pid") or None,
                slurm_job=info.get("slurm_job"),
                adopted=adopted,
            )
            exit_code, tail, cancelled, slurm_state = self._follow(
                kernel, papa, name, recipe_wrapper, seed, info.get("slurm_job")
            )
        return info, exit_code, tail, cancelled, slurm_state

    def _may_start(self, name: str, message: model.Message) -> None:
        """Refuse to start a program nobody needs (the runner stops, or the
        run was cancelled since the message was claimed)."""
        if self._stopping.is_set():
            raise ProgramLeftRunning("runner stopping; not started")
        if programs.finished(self._dispatch(), message):
            raise ProgramCancelled(f"{name} not started: its run is cancelled")
        if programs.lost_program(message, name):
            logger.warning(
                "%s: started by an earlier delivery, unknown to papa now (a "
                "kernel restarted without its state dir?); starting it again",
                name,
            )

    def _start(
        self,
        kernel: Any,
        papa: Any,
        name: str,
        step: dict[str, Any],
        recipe_wrapper: RecipeWrapper,
    ) -> tuple[Any, bool]:
        """Have papa start the step's program (sbatch for a Slurm step) with
        the runner's environment plus ``DISPATCH_RUN``, ``DISPATCH_STEP`` and
        ``DISPATCH_MESSAGE`` (papa would otherwise give it an empty one);
        ``(its entry, adopted)``.  papa's names make the start exclusive:
        of two runners that start one message's program, one starts it and
        the other adopts it."""
        argv = [str(argument) for argument in step["command"]]
        options = {}
        if "slurm" in step:
            options["slurm"] = step["slurm"]
        environment = dict(os.environ)
        environment.update(
            DISPATCH_RUN=str(recipe_wrapper.environment.get("ID", "")),
            DISPATCH_STEP=str(recipe_wrapper.recipe_pointer),
            DISPATCH_MESSAGE=str(recipe_wrapper.message_id),
        )
        try:
            info = kernel.make_process(
                name,
                shutil.which(argv[0]) or argv[0],
                args=argv[1:],
                env=environment,
                stdout=papa.PIPE,
                stderr=papa.STDOUT,
                **options,
            )
        except papa.Error:
            # Another runner, whose claim lapsed as we took the message,
            # started it a moment ago (with another environment): adopt it.
            info = kernel.list_processes(name).get(name)
            if info is None:
                raise
            logger.info("%s was started meanwhile by another runner: adopting", name)
            return info, True
        where = f"Slurm job {info['slurm_job']}" if info.get("slurm_job") else ""
        logger.info("%s started: %s", name, where or f"pid {info.get('pid')}")
        return info, False

    def _follow(
        self,
        kernel: Any,
        papa: Any,
        name: str,
        recipe_wrapper: RecipeWrapper,
        seed: str,
        slurm_job: str | None,
    ) -> tuple[int, str, bool, str | None]:
        """Watch program *name* to its end; ``(exit code, output tail,
        cancelled, Slurm state)``.

        Each batch is acknowledged only after it was handled, and the one
        holding the exit code only once the code is committed in the
        attempt (papa forgets an ended program when its end is
        acknowledged): a runner killed at any moment, or whose message went
        to another runner, loses nothing.  Leaving in any other way drops
        the watch without acknowledging (papa's ``q`` would acknowledge).
        """
        output = bytearray(seed.encode() + b"\n" if seed else b"")
        message = self._message(recipe_wrapper)
        run = self._dispatch().runs[message.run_id]
        storage = self._fed_by.database.storage
        watch = storage.watch(self._poke, oids=[run._p_oid, message._p_oid])
        # A cancel or dead letter committed before the watch began wakes
        # nobody: look once at the start.
        self._poke()
        watcher = kernel.watch_processes(name)
        exit_code = slurm_state = None
        cancelled = False
        period = self._fed_by.lease * RENEW_FRACTION
        renewal = time.monotonic() + period
        tail_note = time.monotonic() + TAIL_NOTE_INTERVAL
        received = noted = 0  # bytes of output read, and when last noted
        try:
            while watcher:
                # Wake-ups, renewals and tail notes are looked at on every
                # turn, so that a program that writes all the time cannot
                # starve them.
                waiting = watcher.ready
                due = min(renewal, tail_note) if received != noted else renewal
                timeout = 0.0 if waiting else max(0.0, due - time.monotonic())
                readable, _, _ = select.select(
                    [watcher, self._wake_read], [], [], timeout
                )
                if time.monotonic() >= renewal:
                    self._renew(recipe_wrapper)
                    renewal = time.monotonic() + period
                if received != noted and time.monotonic() >= tail_note:
                    # Only output papa was told we have (acknowledged).
                    self._note(recipe_wrapper, output_tail=output_tail(bytes(output)))
                    noted = received
                    tail_note = time.monotonic() + TAIL_NOTE_INTERVAL
                if self._wake_read in readable:
                    os.read(self._wake_read, 4096)
                    verdict = self._check(papa, name, recipe_wrapper, cancelled)
                    if verdict is None:
                        self._leave(recipe_wrapper, name, output)
                    cancelled = verdict
                if not (waiting or watcher in readable):
                    continue
                out, err, closed = watcher.read()
                for record in out + err:
                    output.extend(record.data)
                    received += len(record.data)
                del output[: -2 * OUTPUT_TAIL_BYTES]  # a tail, not all of it
                for record in closed:
                    exit_code = record.data
                    job = self._slurm_entry(papa, name) if slurm_job else {}
                    slurm_state = job.get("state")
                    if not self._note(
                        recipe_wrapper,
                        exit_code=exit_code,
                        slurm_state=slurm_state,
                        slurm_nodes=job.get("nodelist"),
                        output_tail=output_tail(bytes(output)),
                        ended=time.time(),
                    ):
                        raise ProgramLeftRunning(
                            f"{name} ended but its message is no longer ours: "
                            "its exit code stays in papa for the runner that has it"
                        )
                watcher.acknowledge()
        finally:
            watch.close()
            drop_watch(watcher)
        if exit_code is None:
            raise ProgramVanished(f"papa forgot {name} before it ended")
        return exit_code, output_tail(bytes(output)), cancelled, slurm_state

    @staticmethod
    def _slurm_entry(papa: Any, name: str) -> dict[str, Any]:
        """papa's entry of the ended Slurm job of *name*: the state it ended
        in (TIMEOUT, NODE_FAIL, ...) and its nodes; asked before its end is
        acknowledged."""
        try:
            with papa.Papa(papa_address()) as other:
                entry = other.list_processes(name).get(name, {})
        except papa.Error as error:
            logger.warning("%s: no Slurm state: %s", name, error)
            return {}
        return {key: value for key, value in entry.items() if value != "-"}

    def _renew(self, recipe_wrapper: RecipeWrapper) -> None:
        """Extend our claim on the message by a lease from now, so that a
        program may run longer than a lease without the message going to
        another runner; a runner that died stops renewing, and its claim
        lapses one lease later at most.  A conflict (another consumer
        claimed from the same queue tree) is tried again at once."""

        def renew(retry: int) -> bool:
            dispatch = self._dispatch()
            run = dispatch.runs[recipe_wrapper.environment["ID"]]
            message = run.messages[recipe_wrapper.message_id]
            if not broker.still_claimed_by(message, self._fed_by.name):
                return False
            queue = dispatch.queues[message.queue]
            if queue.ready.get(message.queue_key) is message:
                del queue.ready[message.queue_key]
            message.lease_until = time.time() + self._fed_by.lease
            broker.put_in_queue(queue, message, message.lease_until)
            return True

        outcome = commit_retrying(
            self._fed_by.transaction_manager, renew, tries=COMMIT_RETRIES
        )
        if outcome == DECLINED:
            self._poke()  # the wake-up check leaves it to its owner
        elif outcome == CONFLICTED:
            logger.warning(
                "%r: claim renewal kept conflicting; next time", recipe_wrapper
            )

    def _check(
        self, papa: Any, name: str, recipe_wrapper: RecipeWrapper, cancelled: bool
    ) -> bool | None:
        """After a wake-up: False to go on watching, True once the program
        was cancelled because nobody needs it, None to leave it running."""
        if cancelled:
            return True
        if self._stopping.is_set():
            return None
        dispatch = self._dispatch()
        run = dispatch.runs[recipe_wrapper.environment["ID"]]
        message = run.messages[recipe_wrapper.message_id]
        if programs.finished(dispatch, message):
            logger.warning("%s: %r is %s; cancelling it", name, message, message.state)
            with papa.Papa(papa_address()) as other:
                other.cancel_processes(name)
            return True
        if not broker.still_claimed_by(message, self._fed_by.name):
            return None  # redelivered: another runner adopts it
        return False

    def _leave(
        self, recipe_wrapper: RecipeWrapper, name: str, output: bytearray
    ) -> NoReturn:
        tail = output_tail(bytes(output))
        self._note(recipe_wrapper, output_tail=tail, left_running=time.time())
        recipe_wrapper.record(output_tail=tail)
        raise ProgramLeftRunning(
            f"runner stopped following {name}; left running, to be adopted"
        )
