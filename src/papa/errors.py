"""The one exception type papa raises: a RuntimeError, as in papa 1.0.6."""

from __future__ import annotations

import re


class Error(RuntimeError):
    """A request papa refused or could not carry out; the text says why."""


class AuthenticationError(Error):
    """The kernel refused this client's token (no use trying again)."""


# How a refused Slurm request names its field on the wire:
# ``Error: slurm.nprocs: nprocs 3 exceeds ...`` (the ``make process`` option
# the field came in), so a client can show the message next to that field.
_FIELD_PREFIX = re.compile(r"^slurm\.([a-z_]+): (.*)$", re.DOTALL)


class RequestError(Error):
    """A Slurm request refused because of one of its fields (``field``:
    ``nprocs``, ``runtime``...); ``message`` is the text without the field
    prefix, for a form that shows it beside that field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"slurm.{field}: {message}")
        self.field = field
        self.message = message


class LimitError(RequestError):
    """A Slurm request over one of its partition's limits (CPUs, GPUs,
    runtime, memory, nodes), as opposed to a malformed one: a spawner
    that words such refusals its own way (papa.hub, with moss's messages)
    tells them apart by this class."""


def error_from_reply(text: str) -> Error:
    """The exception for an ``Error:`` reply's *text*: a :class:`RequestError`
    when the text names a Slurm field, else an :class:`Error`."""
    match = _FIELD_PREFIX.match(text)
    if match:
        return RequestError(match.group(1), match.group(2))
    return Error(text)
