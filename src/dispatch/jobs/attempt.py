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


def _indented_traceback():
    # DoJobber's debug format: the traceback, stripped, every line indented
    # by two spaces.
    return traceback.format_exc().strip().replace("\n", "\n  ")


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
        outcome.ended = time.time()
        return outcome

    outcome.job = job
    job._set_storage(storage, global_storage)
    try:
        os.chdir(directory)
        job._check_phase = CHECK_PHASE
        job._check_results = job.Check(*args, **kwargs)
    except Exception as error:
        job._check_exception = error
        if verbose:
            write(f"{name}.check: fail\n")
        if no_act:
            outcome.exception = error
            outcome.error_traceback = traceback.format_exc()
            if debug:
                write(f"  Error was:\n  {_indented_traceback()}\n")
            outcome.ended = time.time()
            return outcome
    else:
        outcome.passed = True
        outcome.result = job._check_results
        if verbose:
            write(f"{name}.check: pass\n")
        outcome.ended = time.time()
        return outcome

    # The Check failed: Run, whose outcome only matters through the recheck.
    outcome.ran = True
    try:
        os.chdir(directory)
        job._run_results = job.Run(*args, **kwargs)
    except Exception as error:
        job._run_exception = error
        outcome.run_exception = error
        outcome.run_traceback = traceback.format_exc()
        if verbose:
            write(f"{name}.run: fail\n")
        if debug:
            write(f"  Error was:\n  {_indented_traceback()}\n")
    else:
        if verbose:
            write(f"{name}.run: pass\n")

    outcome.decided_by = DECIDED_BY_RECHECK
    try:
        os.chdir(directory)
        job._check_phase = RECHECK_PHASE
        job._recheck_results = job.Check(*args, **kwargs)
    except Exception as error:
        job._recheck_exception = error
        outcome.exception = error
        outcome.error_traceback = traceback.format_exc()
        if verbose:
            write(f'{name}.recheck: fail "{error}"\n')
        if debug:
            write(f"  Error was:\n  {_indented_traceback()}\n")
    else:
        outcome.passed = True
        outcome.result = job._recheck_results
        if verbose:
            write(f"{name}.recheck: pass\n")
    outcome.ended = time.time()
    return outcome
