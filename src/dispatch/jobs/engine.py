"""The DoJobber-compatible engine: phases, retries, statuses, cleanup.

Semantics follow DoJobber 0.6.3 (see ``docs/jobs.rst`` for the differences):
in each *phase* the jobs reachable from the start node are walked in
depth-first post-order (dependencies first, in DEPS order); a job is
attempted when it is not yet successful, has tries left, has not been
attempted in this phase, and every job it depends on, directly or not, has
succeeded by then.  Failed jobs wait for the next phase, so distinct failing
branches are retried round-robin.  The phases stop on success, when no
failed job has tries left, or after the first phase under ``no_act``.

With ``db=`` and ``run_name=`` every attempt is recorded in a ZODB
database (zeo) as it starts and as it ends, so a run killed half-way resumes
in a new process without re-running what succeeded.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from . import graph as graph_module
from .attempt import AttemptOutcome, attempt_job
from .errors import JobConfigurationError, NotConfiguredError
from .graph import JobGraph
from .job import Job
from .threaded import walk_phase_threaded

if TYPE_CHECKING:
    from .persist import RunStore

# attempt_job()'s arguments but *write*, in order: name, job_class, number,
# phase, args, kwargs, storage, global_storage, directory, no_act, verbose, debug.
AttemptArguments = tuple[
    str, type[Job], int, int, tuple, dict, dict, dict, str | None, bool, bool, bool
]

logger = logging.getLogger(__name__)

_PACKAGE_LOGGER = "dispatch.jobs"
_handler_installed = False
_handler_lock = threading.Lock()


@dataclass
class RetryBook:
    """Per-job retry bookkeeping, kept across checknrun() calls of one object."""

    tries_left: int
    retry_delay: float
    next_try: float  # time.monotonic() before which the job must not start
    last_phase: int = -1


class DoJobber:
    """Build a job graph from a root Job class and bring it to success.

    ``DoJobber(dojobber_loglevel=None, db=None, run_name=None)``: with a
    ZODB ``DB`` or ``Connection`` as *db* and a *run_name*, the run's state
    lives in the database (see :mod:`dispatch.jobs.persist`).
    """

    def __init__(
        self,
        dojobber_loglevel: int | str | None = None,
        db: Any = None,
        run_name: str | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise TypeError(
                f"DoJobber() got unexpected arguments {sorted(unknown)}; it accepts "
                f"dojobber_loglevel, db and run_name."
            )
        if (db is None) != (run_name is None):
            raise TypeError("DoJobber(): give db and run_name together, or neither.")
        if run_name is not None and (not isinstance(run_name, str) or not run_name):
            raise TypeError(f"run_name must be a non-empty string, got {run_name!r}")
        if dojobber_loglevel:
            _configure_package_logging(dojobber_loglevel)
        self.graph: JobGraph | None = None
        # name -> True (succeeded), False (failed) or None (not attempted)
        self.nodestatus: dict[str, bool | None] = {}
        self.nodeexceptions: dict[str, BaseException | None] = {}
        self.noderesults: dict[str, Any] = {}
        self.nodereasons: dict[str, dict[str, Any]] = {}
        self.nodeattempts: dict[str, int] = {}
        self.cleanup_errors: list[tuple[str, Exception]] = []
        self.global_storage: dict[str, Any] = {}
        self._db = db
        self._run_name = run_name
        self._store: RunStore | None = None
        self._session_open = False
        self._phase = 0
        self._phase_used = False
        self._books: dict[str, RetryBook] = {}
        self._args: tuple = ()
        self._kwargs: dict[str, Any] = {}
        self._objects: list[Job] = []
        self._directory: str | None = None
        self._no_act = False
        self._verbose = False
        self._debug = False
        self._cleanup = True
        self._output_lock = threading.Lock()
        self._last_decided_by: dict[str, str] = {}

    # -- set-up -----------------------------------------------------------------

    def configure(
        self,
        root: type[Job],
        no_act: bool = False,
        verbose: bool = False,
        debug: bool = False,
        cleanup: bool = True,
        default_tries: int = 3,
        default_retry_delay: float = 1,
    ) -> None:
        """Build and validate the graph of *root*; no job runs yet.

        Raises :class:`JobConfigurationError` (also DoJobber's builtin, see
        :mod:`.errors`) for bad TRIES, RETRY_DELAY, names, DEPS or cycles.
        """
        if self.graph is not None:
            raise JobConfigurationError(
                "configure() was already called on this DoJobber; "
                "create a new DoJobber for another graph."
            )
        graph = self.graph = JobGraph(root, default_tries, default_retry_delay)
        self._no_act = bool(no_act)
        self._debug = bool(debug)
        self._verbose = self._debug or bool(verbose)
        self._cleanup = bool(cleanup)
        now = time.monotonic()
        self._books = {
            name: RetryBook(graph.tries[name], graph.retry_delay[name], now)
            for name in graph.deps
        }
        self.nodeattempts = dict.fromkeys(graph.deps, 0)
        if self._db is not None:
            from .persist import RunStore

            self._store = RunStore(self._db, self._run_name)

    def set_args(self, *args: Any, **kwargs: Any) -> None:
        """Arguments passed to every Check and Run."""
        self._args = args
        self._kwargs = kwargs

    # -- results ----------------------------------------------------------------

    def success(self) -> bool:
        """True when every job reachable from the start node succeeded."""
        return bool(self.nodestatus) and all(self.nodestatus.values())

    def partial_success(self) -> bool:
        """True when at least one job succeeded."""
        return bool(self.nodestatus) and any(self.nodestatus.values())

    def failure(self) -> bool:
        """``not success()``."""
        return not self.success()

    # -- running ----------------------------------------------------------------

    def checknrun(
        self, node: str | type[Job] | None = None, parallel: int | None = None
    ) -> None:
        """Run the phases from *node* (default: the root) until done.

        With ``parallel=N`` (N > 1) ready jobs are attempted in up to N
        threads; the final statuses are those of the sequential order as
        long as jobs do not depend on each other's side effects beyond DEPS.
        Returns None; read ``nodestatus`` and ``success()``.
        """
        if self.graph is None:
            raise NotConfiguredError("call configure(root) before checknrun().")
        start = self.graph.root if node is None else _node_name(node)
        order = self.graph.post_order(start)
        workers = _validate_parallel(parallel)
        self._directory = os.path.realpath(os.curdir)
        if self._phase_used:
            # A new call starts a new phase, so that jobs attempted in the
            # last phase of the previous call are not skipped as "already
            # tried" (DoJobber skipped them after a successful call).
            self._phase += 1
            self._phase_used = False
        self._begin(order)
        try:
            while True:
                if workers > 1:
                    walk_phase_threaded(self, order, workers)
                else:
                    self._walk_phase(order)
                self._flush()
                if self.success():
                    break
                self._phase += 1
                self._phase_used = False
                retriable = any(
                    self.nodestatus.get(name) is False
                    and self._books[name].tries_left > 0
                    for name in order
                )
                if not retriable or self._no_act:
                    break
            self._explain_untried(order)
            # In walk order, as DoJobber's dict fills (restored ones first
            # would otherwise lead).
            self.nodestatus = {
                name: self.nodestatus[name] for name in order if name in self.nodestatus
            }
        finally:
            os.chdir(self._directory)
            if self._store is not None and sys.exc_info()[0] is not None:
                # Interrupted (KeyboardInterrupt...): keep what ended.
                try:
                    self._store.flush()
                except Exception:
                    logger.exception("could not record the last attempt's end")
        if self._cleanup:
            self.cleanup()
        if self._store is not None:
            self._store.finish_call(self)

    def _begin(self, order: Sequence[str]) -> None:
        reachable = set(order)
        previous = self.nodestatus
        if self._store is None:
            # Success is sticky across calls (results, global storage kept);
            # failed jobs go on with the tries they have left.
            self.nodestatus = {n: True for n, s in previous.items() if s is True}
        else:
            if not self._session_open:
                self._store.open_session(self)
                self._session_open = True
            else:
                self._store.continue_session(self)
            # Success is sticky in a persisted run; failures get retried.
            adopted, self._store.adopted = self._store.adopted, False
            self.nodestatus = {
                name: status
                for name, status in self.nodestatus.items()
                if name in reachable and (status is True or adopted)
            }
            previous = self.nodestatus
        self.nodeexceptions = {
            n: e for n, e in self.nodeexceptions.items() if previous.get(n) is False
        }
        self.noderesults = {
            name: result
            for name, result in self.noderesults.items()
            if self.nodestatus.get(name) is True
        }
        self.nodereasons = {}

    def _attemptable(self, name: str) -> bool:
        if self.nodestatus.get(name) is True:
            return False
        book = self._books[name]
        return book.last_phase < self._phase and book.tries_left > 0

    def _configured_graph(self) -> JobGraph:
        """The graph; raises :class:`JobConfigurationError` before configure()."""
        if self.graph is None:
            raise NotConfiguredError("call configure(root) first.")
        return self.graph

    def _walk_phase(self, order: Sequence[str]) -> None:
        complete: dict[str, bool] = {}  # it and everything under it succeeded
        deps = self._configured_graph().deps
        for name in order:
            blocked = not all(complete[child] for child in deps[name])
            self.nodestatus.setdefault(name, None)
            if not blocked and self._attemptable(name):
                delay = self._book_attempt(name)
                self._start_after(name, delay)
                outcome = attempt_job(
                    *self._attempt_arguments(name), write=self._write_now
                )
                self._record(outcome)
            complete[name] = not blocked and self.nodestatus[name] is True

    def _book_attempt(self, name: str) -> float:
        """Take one try of *name*; return how long to wait before starting.

        RETRY_DELAY counts from the previous attempt's *start*, so the wait
        is whatever remains of it.
        """
        book = self._books[name]
        delay = max(0.0, book.next_try - time.monotonic())
        book.last_phase = self._phase
        book.tries_left -= 1
        self._phase_used = True
        self.nodeattempts[name] = self.nodeattempts.get(name, 0) + 1
        if self._store is not None:
            self._store.attempt_started(self, name, delay)
        return delay

    def _flush(self) -> None:
        if self._store is not None:
            self._store.flush()

    def _start_after(self, name: str, delay: float) -> None:
        """Wait *delay* seconds, then mark the start the next delay counts from.

        Only the thread making this attempt touches ``next_try`` until the
        attempt ends: a job is attempted at most once at a time.
        """
        if delay > 0:
            time.sleep(delay)
        book = self._books[name]
        book.next_try = time.monotonic() + book.retry_delay

    def _attempt_arguments(self, name: str) -> AttemptArguments:
        return (
            name,
            self._configured_graph().classes[name],
            self.nodeattempts[name],
            self._phase,
            self._args,
            self._kwargs,
            {},
            self.global_storage,
            self._directory,
            self._no_act,
            self._verbose,
            self._debug,
        )

    def _write_now(self, text: str) -> None:
        sys.stderr.write(text)

    def _record(self, outcome: AttemptOutcome) -> None:
        name = outcome.name
        self._last_decided_by[name] = outcome.decided_by
        if outcome.job is not None:
            self._objects.append(outcome.job)
        if outcome.passed:
            self.nodestatus[name] = True
            self.noderesults[name] = outcome.result
            self.nodeexceptions.pop(name, None)
        else:
            self.nodestatus[name] = False
            self.nodeexceptions[name] = outcome.exception
            self.noderesults.pop(name, None)
        if self._store is not None:
            self._store.attempt_finished(self, outcome)

    def _explain_untried(self, order: Sequence[str]) -> None:
        """Say why each None job was not attempted (DoJobber cannot)."""
        causes: dict[str, list[str]] = {}
        deps = self._configured_graph().deps
        for name in order:
            status = self.nodestatus.get(name)
            failing: list[str] = []
            for child in deps[name]:
                if self.nodestatus.get(child) is not True:
                    failing.extend(causes.get(child) or [child])
                else:
                    failing.extend(causes.get(child, ()))
            failing = list(dict.fromkeys(failing))
            causes[name] = failing
            if status is True:
                continue
            if status is False:
                self.nodereasons[name] = {"reason": "failed"}
            elif failing:
                self.nodereasons[name] = {"reason": "blocked", "blocked_by": failing}
            elif self._books[name].tries_left <= 0:
                self.nodereasons[name] = {"reason": "out_of_tries"}
            else:
                self.nodereasons[name] = {"reason": "not_attempted"}

    def close(self) -> None:
        """Close the database connection this engine opened (if it did).

        A DB passed as ``db=`` stays open: it belongs to the caller.
        """
        if self._store is not None:
            self._store.close()

    # -- cleanup ----------------------------------------------------------------

    def cleanup(self) -> list[tuple[str, Exception]]:
        """Call ``Cleanup()`` of every job object created so far, LIFO.

        One object exists per attempt (even when its Check passed at once
        or Run never ran), so Cleanup must not assume Run ran.  A failing
        Cleanup is reported (stderr line, log, ``cleanup_errors``) and the
        others still run; statuses are untouched.  Each object is cleaned
        once.  Returns the errors of this call as ``(name, exception)``.
        """
        errors: list[tuple[str, Exception]] = []
        while self._objects:
            job = self._objects.pop()
            method = getattr(job, "Cleanup", None)
            if not callable(method):
                continue
            name = type(job).__name__
            if self._debug:
                sys.stderr.write(f"{name}.cleanup running\n")
            try:
                method()
            except Exception as error:
                sys.stderr.write(f'{name}.cleanup: fail "{error}"\n')
                logger.error("Cleanup of job %r failed", name, exc_info=True)
                errors.append((name, error))
            else:
                if self._debug:
                    sys.stderr.write(f"{name}.cleanup: pass\n")
        self.cleanup_errors.extend(errors)
        return errors

    # -- graphs -----------------------------------------------------------------

    def node_colours(self) -> dict[str, str | None]:
        """name -> DOT fill colour for the current statuses (None: unfilled)."""
        colours = {}
        for name in self.graph.deps if self.graph else ():
            colours[name] = graph_module.colour_for(
                self.nodestatus.get(name),
                self._last_decided_by.get(name),
                self.nodereasons.get(name, {}).get("reason"),
            )
        return colours

    def write_graph(self, fd: IO[Any], fmt: str = "png") -> None:
        """Write the graph in *fmt* to the open file *fd*.

        ``dot`` (DOT text) and ``json`` need nothing; other formats (png,
        svg, pdf...) need graphviz's ``dot`` program and raise
        :class:`GraphRenderError` without it.  Text or binary files both work.
        """
        if self.graph is None:
            raise NotConfiguredError("call configure(root) before write_graph().")
        data = self.graph_bytes(fmt)
        graph_module.write_bytes_or_text(fd, data, fmt)

    def graph_bytes(self, fmt: str = "dot") -> bytes:
        """The graph rendered in *fmt*, as bytes."""
        graph = self._configured_graph()
        if fmt == "json":
            nodes = {
                name: {"status": self.nodestatus.get(name), "colour": colour}
                for name, colour in self.node_colours().items()
            }
            return graph.to_json(nodes).encode()
        dot_text = graph.to_dot(self.node_colours())
        if fmt == "dot":
            return dot_text.encode()
        return graph_module.render(dot_text, fmt)

    def display_graph(self) -> None:
        """Show the graph as PNG with ImageMagick's ``display`` (X11)."""
        import shutil
        import subprocess

        program = shutil.which("display")
        if program is None:
            raise graph_module.GraphRenderError(
                "cannot display the graph: ImageMagick's 'display' program is not "
                "installed (use write_graph(file, 'svg') instead)."
            )
        subprocess.run([program], input=self.graph_bytes("png"), check=True)


def _node_name(node: str | type[Job]) -> str:
    return node if isinstance(node, str) else node.__name__


def _validate_parallel(parallel: object) -> int:
    if parallel is None:
        return 1
    if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
        raise ValueError(f"parallel must be an integer >= 1, got {parallel!r}")
    return parallel


def _configure_package_logging(level: int | str) -> None:
    """DoJobber's ``dojobber_loglevel``: set the level, add one handler once."""
    global _handler_installed
    package_logger = logging.getLogger(_PACKAGE_LOGGER)
    package_logger.setLevel(level)
    with _handler_lock:
        if _handler_installed:
            return
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("DoJobber %(levelname)-19s: %(message)s")
        )
        package_logger.addHandler(handler)
        _handler_installed = True
