"""A job run's state as persistent objects in a ZODB database (zeo).

Layout: ``root["dispatch.jobs"]`` is an OOBTree of run name -> :class:`JobRun`;
each run holds its graph's structure (so it can be shown and drawn without
the job classes), an OOBTree of job name -> :class:`NodeRecord`, its
sessions, and the run's ``global_storage``.

A *session* is one engine object's life.  When the last session ended
normally, a new one keeps the jobs that succeeded (they are not re-run) and
gives the others fresh tries, as re-running a DoJobber script would.  When
the last session was cut short (its process was killed), the new one
*adopts* it: same phase, same tries left, and the attempt that was running is
counted as failed ("interrupted").

Every attempt is committed when it starts and when it ends, in transactions
of their own, so anyone can watch a run from another process.
"""

import logging
import os
import pickle
import socket
import time

import transaction
from BTrees.OOBTree import OOBTree
from persistent import Persistent
from ZODB.POSException import ConflictError

logger = logging.getLogger(__name__)

RUNS_KEY = "dispatch.jobs"
# Commits that hit a conflict are redone from the engine's memory; a run has
# a single writer, so more than a few conflicts in a row means a bug.
COMMIT_ATTEMPTS = 5
# Long reprs and tracebacks are cut so that one chatty job cannot bloat
# every later load of its record.
TEXT_LIMIT = 4000

SESSION_RUNNING = "running"
SESSION_FINISHED = "finished"
SESSION_INTERRUPTED = "interrupted"


class RunBusyError(RuntimeError):
    """Another live process on this host is running the same run."""


class RecordedJobError(RuntimeError):
    """A job's failure read back from the database (the original is gone)."""

    def __init__(self, type_name, message, traceback_text=None):
        super().__init__(message)
        self.type_name = type_name
        self.traceback_text = traceback_text


class ValueBox(Persistent):
    """One picklable value in a record of its own, loaded only when needed."""

    def __init__(self, value=None):
        self.value = value


class NodeRecord(Persistent):
    """The recorded state of one job of a run."""

    def __init__(self, name):
        self.name = name
        self.status = None
        self.decided_by = None
        self.running = False
        self.reason = None
        self.blocked_by = ()
        self.tries_left = None
        self.last_phase = -1
        self.last_started = None
        self.session = None
        self.attempts = ()
        self.error = None
        self.error_type = None
        self.traceback = None
        self.result_repr = None
        self.result = None


class GraphRecord(Persistent):
    """A run's graph structure, in a record of its own: it is large and
    rarely changes, while the run record changes with every commit."""

    def __init__(self, root=None, deps=None):
        self.root = root
        self.deps = dict(deps or {})


class JobRun(Persistent):
    """A named run: its graph, its jobs' records, its sessions."""

    def __init__(self, name):
        self.name = name
        self.created = time.time()
        self.updated = self.created
        self.graph = GraphRecord()
        self.phase = 0
        self.state = "new"
        self.sessions = ()
        self.nodes = OOBTree()
        self.global_storage = ValueBox({})
        self.cleanup_errors = ()


def _text(value):
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT] + "..."


def _picklable(value):
    try:
        pickle.dumps(value, protocol=3)
    except Exception:
        return False
    return True


def _alive_here(session):
    """Whether *session*'s owner is a live process on this host, not us."""
    if session.get("host") != socket.gethostname():
        return False
    pid = session.get("pid")
    if not pid or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def runs_of(connection, create=False):
    """The OOBTree of runs in *connection*'s root (None if absent)."""
    root = connection.root()
    runs = root.get(RUNS_KEY)
    if runs is None and create:
        runs = root[RUNS_KEY] = OOBTree()
    return runs


class RunStore:
    """Writes one engine's run to the database; the engine calls it."""

    def __init__(self, db, run_name):
        if hasattr(db, "root") and hasattr(db, "transaction_manager"):
            self._connection = db  # a Connection: share its transactions
            self._manager = db.transaction_manager
            self._owns_connection = False
        elif hasattr(db, "open"):
            self._manager = transaction.TransactionManager()
            self._connection = db.open(transaction_manager=self._manager)
            self._owns_connection = True
        else:
            raise TypeError(f"db must be a ZODB DB or Connection, got {db!r}")
        self.run_name = run_name
        self.adopted = False
        self._pending = []
        self._session = None
        self._last_global_pickle = None

    # -- plumbing ---------------------------------------------------------------

    def _write(self, change=None):
        """Apply the pending changes and *change(run)*, commit, and redo all
        of them after a conflict (they are computed from the engine's memory).
        """
        changes = self._pending + ([change] if change is not None else [])
        if not changes:
            return
        for trial in range(1, COMMIT_ATTEMPTS + 1):
            try:
                self._manager.begin()
                runs = runs_of(self._connection, create=True)
                run = runs.get(self.run_name)
                if run is None:
                    run = runs[self.run_name] = JobRun(self.run_name)
                for step in changes:
                    step(run)
                run.updated = time.time()
                self._manager.commit()
                self._pending = []
                return
            except ConflictError:
                self._manager.abort()
                if trial == COMMIT_ATTEMPTS:
                    raise
                logger.warning("conflict writing run %r, redoing", self.run_name)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _node(run, name):
        record = run.nodes.get(name)
        if record is None:
            record = run.nodes[name] = NodeRecord(name)
        return record

    def _owner(self):
        return {"host": socket.gethostname(), "pid": os.getpid(), "at": time.time()}

    # -- sessions ---------------------------------------------------------------

    def open_session(self, engine):
        """Start or adopt a session and load the run's state into *engine*."""
        self._write(lambda run: self._open(run, engine))

    def _open(self, run, engine):
        graph = engine.graph
        if run.graph.root != graph.root or run.graph.deps != graph.deps:
            if run.graph.root is not None:
                logger.info(
                    "run %r: the job graph changed since it was stored", run.name
                )
            run.graph = GraphRecord(graph.root, graph.deps)
        last = run.sessions[-1] if run.sessions else None
        adopt = last is not None and last["state"] == SESSION_RUNNING
        if adopt and _alive_here(last):
            raise RunBusyError(
                f"run {run.name!r} is being run by process {last['pid']} on this "
                f"host; wait for it to finish or stop it first."
            )
        engine.nodestatus = {}
        engine.nodeexceptions = {}
        engine.noderesults = {}
        self.adopted = adopt
        if adopt:
            logger.warning(
                "run %r: adopting session %d interrupted on %s (pid %s)",
                run.name,
                last["number"],
                last.get("host"),
                last.get("pid"),
            )
            number = last["number"]
            session = dict(last, state=SESSION_RUNNING, **self._owner())
            session["adoptions"] = last.get("adoptions", 0) + 1
            run.sessions = run.sessions[:-1] + (session,)
            engine._phase = run.phase
        else:
            number = len(run.sessions) + 1
            session = {"number": number, "state": SESSION_RUNNING, **self._owner()}
            session["started"] = session["at"]
            run.sessions = run.sessions + (session,)
            engine._phase = run.phase + 1 if last is not None else 0
            run.phase = engine._phase
        self._session = number
        run.state = SESSION_RUNNING
        now_wall, now_monotonic = time.time(), time.monotonic()
        for name in graph.deps:
            record = run.nodes.get(name)
            if record is None:
                continue
            if adopt and record.session == number:
                self._adopt_node(engine, record, now_wall, now_monotonic)
            if record.status is True:
                engine.nodestatus[name] = True
                engine._last_decided_by[name] = record.decided_by
                box = record.result
                engine.noderesults[name] = box.value if box is not None else None
        stored = run.global_storage.value
        engine.global_storage = dict(stored) if stored else {}
        self._last_global_pickle = None

    def _adopt_node(self, engine, record, now_wall, now_monotonic):
        name = record.name
        book = engine._books[name]
        if record.tries_left is not None:
            book.tries_left = record.tries_left
        book.last_phase = record.last_phase
        if record.last_started is not None:
            remaining = record.last_started + book.retry_delay - now_wall
            book.next_try = now_monotonic + max(0.0, remaining)
        engine.nodeattempts[name] = sum(
            1 for attempt in record.attempts if attempt.get("session") == record.session
        )
        if record.running:
            record.running = False
            record.status = False
            record.decided_by = "interrupted"
            record.error_type = "Interrupted"
            record.error = "the process running this attempt stopped before it ended"
            record.traceback = None
            if record.attempts:
                last = dict(record.attempts[-1], state="interrupted", outcome="failed")
                record.attempts = record.attempts[:-1] + (last,)
        if record.status is False:
            engine.nodestatus[name] = False
            engine.nodeexceptions[name] = RecordedJobError(
                record.error_type, record.error, record.traceback
            )

    def continue_session(self, engine):
        """A further checknrun() of the same engine object."""

        def change(run):
            run.state = SESSION_RUNNING
            session = dict(run.sessions[-1], state=SESSION_RUNNING)
            run.sessions = run.sessions[:-1] + (session,)

        self._write(change)

    def finish_call(self, engine):
        """Record the end of a checknrun(): statuses, reasons, cleanup errors."""

        def change(run):
            for name in engine.graph.deps:
                if name not in engine.nodestatus:
                    continue
                status = engine.nodestatus[name]
                reason = engine.nodereasons.get(name, {})
                record = run.nodes.get(name)
                if record is None and status is None and not reason:
                    continue
                record = self._node(run, name)
                if record.status is not status:
                    record.status = status
                record.reason = reason.get("reason")
                record.blocked_by = tuple(reason.get("blocked_by", ()))
            ended = time.time()
            session = dict(
                run.sessions[-1],
                state=SESSION_FINISHED,
                ended=ended,
                success=engine.success(),
            )
            run.sessions = run.sessions[:-1] + (session,)
            run.state = SESSION_FINISHED
            run.cleanup_errors = tuple(
                (name, _text(f"{type(error).__name__}: {error}"))
                for name, error in engine.cleanup_errors
            )

        self._write(change)

    # -- attempts ---------------------------------------------------------------

    def attempt_started(self, engine, name, delay):
        book = engine._books[name]
        started = time.time() + delay

        def change(run):
            record = self._node(run, name)
            record.running = True
            record.session = self._session
            record.tries_left = book.tries_left
            record.last_phase = book.last_phase
            record.last_started = started
            record.attempts = record.attempts + (
                {
                    "number": engine.nodeattempts[name],
                    "session": self._session,
                    "phase": engine._phase,
                    "started": started,
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "state": "running",
                },
            )
            run.phase = engine._phase

        self._write(change)

    def flush(self):
        """Commit what is pending (the end of the last attempt)."""
        self._write()

    def attempt_finished(self, engine, outcome):
        """Record an attempt's end.

        It is committed with the next write: the next attempt's start (the
        very next thing the engine does, so nothing happens in between that
        a crash could lose) or :meth:`flush`, which the engine calls before
        it waits, sleeps or ends a phase.  This halves the commits.
        """
        global_pickle, global_copy = self._global_snapshot(engine.global_storage)

        def change(run):
            record = self._node(run, outcome.name)
            record.running = False
            record.status = outcome.passed
            record.decided_by = outcome.decided_by
            record.reason = None if outcome.passed else "failed"
            record.blocked_by = ()
            attempt = {
                "state": "ended",
                "ended": outcome.ended,
                "outcome": "passed" if outcome.passed else "failed",
                "decided_by": outcome.decided_by,
                "ran": outcome.ran,
            }
            if outcome.passed:
                record.error = record.error_type = record.traceback = None
                result = outcome.result
                record.result_repr = _text(result)
                if result is None:
                    record.result = None
                elif _picklable(result):
                    record.result = ValueBox(result)
                else:
                    logger.warning(
                        "run %r: result of job %r cannot be pickled; only its "
                        "repr is stored",
                        run.name,
                        outcome.name,
                    )
                    record.result = None
            else:
                error = outcome.exception
                record.error_type = type(error).__name__
                record.error = _text(str(error))
                record.traceback = _text(outcome.error_traceback or "")
                record.result = None
                record.result_repr = None
                attempt["error"] = f"{record.error_type}: {record.error}"
            if outcome.run_exception is not None:
                attempt["run_error"] = _text(
                    f"{type(outcome.run_exception).__name__}: {outcome.run_exception}"
                )
            if record.attempts:
                record.attempts = record.attempts[:-1] + (
                    dict(record.attempts[-1], **attempt),
                )
            if global_copy is not None:
                run.global_storage.value = global_copy

        self._pending.append(change)
        if global_pickle is not None:
            self._last_global_pickle = global_pickle

    def _global_snapshot(self, global_storage):
        """(pickle, copy) of the picklable part of global_storage if changed."""
        try:
            snapshot = dict(global_storage)
        except RuntimeError:  # resized by a job thread right now
            return None, None
        kept = {}
        for key, value in snapshot.items():
            if _picklable(key) and _picklable(value):
                kept[key] = value
            else:
                logger.warning("global_storage[%r] cannot be pickled; not stored", key)
        try:
            data = pickle.dumps(kept, protocol=3)
        except Exception:
            return None, None
        if data == self._last_global_pickle:
            return None, None
        return data, pickle.loads(data)

    def close(self):
        """Close the connection this store opened (not a caller's)."""
        if self._owns_connection and self._connection.opened is not None:
            self._connection.close()


# -- reading ------------------------------------------------------------------------


def load_run(connection, run_name):
    """The :class:`JobRun` named *run_name*, or None."""
    runs = runs_of(connection)
    return None if runs is None else runs.get(run_name)


def run_names(connection):
    """Names of all recorded runs, sorted."""
    runs = runs_of(connection)
    return [] if runs is None else list(runs.keys())
