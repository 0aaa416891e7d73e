"""Job classes: what a user subclasses to describe one step of a job graph.

A job is a *class*: the engine creates one fresh instance per attempt, so
nothing leaks from a failed attempt into the next one except what the job
puts in ``global_storage`` on purpose.  The method names (``Check``, ``Run``,
``Cleanup``) and attributes are DoJobber's, so that a DoJobber program runs
by changing its import.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

logger = logging.getLogger(__name__)

CHECK_PHASE = "check"
RECHECK_PHASE = "recheck"


class Job:
    """One idempotent step: ``Check`` verifies the end state, ``Run`` reaches it.

    Class attributes a subclass may set:

    - ``DEPS``: Job classes that must succeed first, attempted in this order.
    - ``TRIES``: attempts allowed (an int >= 1; the engine default is 3).
    - ``RETRY_DELAY``: minimum seconds between the *starts* of two attempts
      of this job (>= 0; the engine default is 1).

    ``Check`` passes when it returns (its return value is the job's result)
    and fails when it raises.  ``Run`` is called only after a failed
    ``Check``; what it returns or raises does not decide the status: the
    ``Check`` that follows it (the *recheck*) does.  An optional
    ``Cleanup(self)`` is called at the end of the run, once per attempt.

    ``self.storage`` is a dict private to one attempt (shared by its Check,
    Run and recheck); ``self.global_storage`` is one dict shared by every job
    of the run (persisted with the run when the engine has a database).
    """

    DEPS: Sequence[type[Job]] = ()
    TRIES: int | None = None
    RETRY_DELAY: float | None = None

    # Class-level defaults so that a subclass whose __init__ forgets to call
    # super().__init__() still has every attribute the engine and
    # RunonlyJob read.
    storage: dict[str, Any] | None = None
    global_storage: dict[str, Any] | None = None
    _check_phase: str | None = None
    _check_results: Any = None
    _check_exception: BaseException | None = None
    _run_results: Any = None
    _run_exception: BaseException | None = None
    _recheck_results: Any = None
    _recheck_exception: BaseException | None = None

    def __init__(self) -> None:
        self.storage = None
        self.global_storage = None
        self._check_phase = None
        self._check_results = None
        self._check_exception = None
        self._run_results = None
        self._run_exception = None
        self._recheck_results = None
        self._recheck_exception = None

    def _set_storage(
        self, storage: dict[str, Any], global_storage: dict[str, Any]
    ) -> None:
        """Give this attempt its private and the run's shared dict."""
        self.storage = storage
        self.global_storage = global_storage

    def Check(self, *args: Any, **kwargs: Any) -> Any:
        """Raise unless the job's end state holds; a subclass must override."""
        raise NotImplementedError(f"{type(self).__name__} defines no Check method")

    def Run(self, *args: Any, **kwargs: Any) -> Any:
        """Try to reach the end state; a subclass must override."""
        raise NotImplementedError(f"{type(self).__name__} defines no Run method")


class DummyJob(Job):
    """A job that succeeds as soon as its dependencies have: a grouping node."""

    def Check(self, *args: Any, **kwargs: Any) -> None:
        """Always pass."""

    def Run(self, *args: Any, **kwargs: Any) -> None:
        """Nothing to do."""


class RunonlyJob(Job):
    """A job with only a ``Run``: it runs on every attempt.

    The first Check always fails so that Run executes; the recheck then
    raises Run's exception or returns Run's result.  Under ``no_act`` it
    therefore always fails: nothing can show it would succeed without
    running it.  Do not define a ``Check`` in a subclass.
    """

    def Check(self, *args: Any, **kwargs: Any) -> Any:
        """Fail first; after Run, report Run's outcome."""
        if self._check_phase == CHECK_PHASE:
            raise RuntimeError("Runonly node check intentionally fails first time.")
        if self._run_exception is not None:
            raise self._run_exception
        return self._run_results
