"""Old home of the supervisor: its logic is now in
:mod:`dispatch.runtime.supervisor` (the kernel address in
:mod:`dispatch.runtime.kernel`), ``dispatch supervise`` in
:mod:`dispatch.cli.supervise`; both are still importable from here."""

from dispatch.cli import supervise as _command
from dispatch.runtime.kernel import DEFAULT_PAPA, kernel_answers, papa_address
from dispatch.runtime.supervisor import (
    RELEASE_ATTEMPTS,
    SCHEMA,
    Slot,
    Supervisor,
    load_configuration,
    release_claims,
)

__all__ = [
    "DEFAULT_PAPA",
    "RELEASE_ATTEMPTS",
    "SCHEMA",
    "Slot",
    "Supervisor",
    "kernel_answers",
    "load_configuration",
    "papa_address",
    "release_claims",
    "supervise_main",
]


# The entry function of the old layout is the command's ``main``.
supervise_main = _command.COMMAND.main
