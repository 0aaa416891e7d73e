"""Waiting for something no event announces (another process's port or file,
a state another client commits), with a deadline that fails the test."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

Value = TypeVar("Value")

#: The first pause between two polls; it doubles up to ``MAXIMUM_INTERVAL``,
#: so that a quick condition is seen at once and a slow one costs little CPU
#: on a loaded 2-core machine.
FIRST_INTERVAL = 0.005
MAXIMUM_INTERVAL = 0.1


def wait_until(
    condition: Callable[[], Value],
    timeout: float,
    *,
    interval: float = FIRST_INTERVAL,
    maximum_interval: float = MAXIMUM_INTERVAL,
    message: str = "condition",
) -> Value:
    """Call *condition* until it returns something true, and return that.

    Between calls it sleeps *interval* seconds, doubling up to
    *maximum_interval*.  After *timeout* seconds the test fails (with
    ``pytest.fail``) naming *message*, how long it waited, and the last
    value.  An exception raised by *condition* (a server that exited, say)
    ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        value = condition()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(
                f"timed out after {timeout:g}s waiting for {message} "
                f"(last value: {value!r})"
            )
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, maximum_interval)
