"""Old home of services: the ``Service`` base and its lookup are now in
:mod:`dispatch.runtime.service`, ``dispatch service`` in
:mod:`dispatch.cli.service`; both are still importable from here."""

from dispatch.cli import service as _command
from dispatch.runtime.service import (
    ENTRY_POINT_GROUP,
    Service,
    known_services,
    load_service,
    make_consumer,
    run_service,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Service",
    "known_services",
    "load_service",
    "make_consumer",
    "run_service",
    "service_main",
]


# The entry function of the old layout is the command's ``main``.
service_main = _command.COMMAND.main
