"""One attempt of one job: construct, Check, Run, recheck.

Kept apart from the scheduler so that the sequential and the threaded
engines share it, and so that the verbose and debug lines (DoJobber's exact
formats, which tests diff line by line) are written in one place.
"""

import logging
import os
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from .job import CHECK_PHASE, RECHECK_PHASE

logger = logging.getLogger(__name__)

# Where an attempt's outcome was decided.
DECIDED_BY_CONSTRUCTOR = "init"
DECIDED_BY_CHECK = "check"
DECIDED_BY_RECHECK = "recheck"


@dataclass
class AttemptOutcome:
    """What one attempt did; the engine turns it into status and records."""

    name: str
    number: int  # 1 for the job's first attempt in this run
    phase: int
    started: float  # wall-clock time.time(), for records read elsewhere
    ended: float = 0.0
    passed: bool = False
    decided_by: str = DECIDED_BY_CHECK
    ran: bool = False  # whether Run executed
    result: Any = None
    exception: BaseException | None = None
    error_traceback: str | None = None
    run_exception: BaseException | None = None
    run_traceback: str | None = None
    job: Any = None  # the instance, kept for its Cleanup
    lines: list = field(default_factory=list)

    @property
    def eventually(self):
        """Passed only after Run: DoJobber's darkgreen."""
        return self.passed and self.decided_by == DECIDED_BY_RECHECK


def _indented(traceback_text):
    # DoJobber's debug format: the traceback, stripped, every line indented
    # by two spaces.
    return traceback_text.strip().replace("\n", "\n  ")


def _indented_traceback():
    return _indented(traceback.format_exc())


def _call(directory, method, args, kwargs):
    """``method(*args, **kwargs)`` in *directory* (jobs may chdir): its
    ``(result, None, None)``, or ``(None, error, traceback text)`` when it
    raised an Exception (a BaseException passes through)."""
    try:
        os.chdir(directory)
        return method(*args, **kwargs), None, None
    except Exception as error:
        return None, error, traceback.format_exc()


def attempt_job(
    name,
    job_class,
    number,
    phase,
    args,
    kwargs,
    storage,
    global_storage,
    directory,
    no_act,
    verbose,
    debug,
    write,
):
    """Make one attempt of *job_class*; *write* receives output lines.

    ``write`` is ``sys.stderr.write`` in the sequential engine (so lines
    interleave with what jobs print, as in DoJobber) or a buffer's append in
    the threaded one.  Exceptions from the job are caught and recorded;
    ``BaseException`` (KeyboardInterrupt, SystemExit) passes through.
    """
    outcome = AttemptOutcome(name=name, number=number, phase=phase, started=time.time())
    try:
        try:
            job = job_class()
        except Exception as error:
            logger.error('Could not create Job "%s" - check its __init__', name)
            outcome.exception = error
            outcome.error_traceback = traceback.format_exc()
            outcome.decided_by = DECIDED_BY_CONSTRUCTOR
            if verbose:
                write(f"{name}.check: fail\n")
            if debug:
                write(f"  Could not create job, error was {_indented_traceback()}\n")
            return outcome

        outcome.job = job
        job._set_storage(storage, global_storage)
        result, error, error_traceback = _check(
            job, CHECK_PHASE, directory, args, kwargs
        )
        if error is None:
            _passed(outcome, result, "check", verbose, write)
            return outcome
        if verbose:
            write(f"{name}.check: fail\n")
        if no_act:
            _failed(outcome, error, error_traceback, debug, write)
            return outcome

        # The Check failed: Run, whose outcome only matters through the recheck.
        outcome.ran = True
        result, error, error_traceback = _call(directory, job.Run, args, kwargs)
        job._run_results, job._run_exception = result, error
        if error is None:
            if verbose:
                write(f"{name}.run: pass\n")
        else:
            outcome.run_exception = error
            outcome.run_traceback = error_traceback
            if verbose:
                write(f"{name}.run: fail\n")
            _write_error(error_traceback, debug, write)

        outcome.decided_by = DECIDED_BY_RECHECK
        result, error, error_traceback = _check(
            job, RECHECK_PHASE, directory, args, kwargs
        )
        if error is None:
            _passed(outcome, result, "recheck", verbose, write)
            return outcome
        if verbose:
            write(f'{name}.recheck: fail "{error}"\n')
        _failed(outcome, error, error_traceback, debug, write)
        return outcome
    finally:
        # Also when a BaseException passes through, for whoever catches it.
        outcome.ended = time.time()


def _check(job, phase, directory, args, kwargs):
    """``job.Check`` in *phase*; its result and error are also kept on the
    job, under the names DoJobber's jobs read them by."""
    job._check_phase = phase
    result, error, error_traceback = _call(directory, job.Check, args, kwargs)
    if phase == CHECK_PHASE:
        job._check_results, job._check_exception = result, error
    else:
        job._recheck_results, job._recheck_exception = result, error
    return result, error, error_traceback


def _passed(outcome, result, step, verbose, write):
    outcome.passed = True
    outcome.result = result
    if verbose:
        write(f"{outcome.name}.{step}: pass\n")


def _failed(outcome, error, error_traceback, debug, write):
    """The error that decided the attempt."""
    outcome.exception = error
    outcome.error_traceback = error_traceback
    _write_error(error_traceback, debug, write)


def _write_error(error_traceback, debug, write):
    if debug:
        write(f"  Error was:\n  {_indented(error_traceback)}\n")
