"""Running ``dispatch supervise`` processes as zeo records, so that the
console can start a service instance again after a clean stop.

Each supervisor records itself as it starts (:func:`register`): its
configuration's name, host, pid and, per ``<service>`` section, the service,
queue, how many instances it keeps and how many of them are stopped (an
instance that exited 0, asked by ``dispatch shutdown`` or the Stop button, is
not started again on its own).  A start request (:func:`request_start`,
the console's Start button) is appended to the record; the supervisor
watches its record through zeo, takes the requests (:func:`take_requests`)
and starts a stopped instance of each section named.

Like :mod:`dispatch.state.admin`, each function changes objects of one open
connection and leaves the commit to the caller.
"""

from __future__ import annotations

import os
import time
from typing import Any

from persistent import Persistent

from dispatch.state import broker, model


class SupervisorError(ValueError):
    """A start request that cannot be made now (every instance runs)."""


class NoSuchService(SupervisorError):
    """A start request naming no running supervisor, or none of its services."""


class SupervisorRecord(Persistent):
    """One ``dispatch supervise`` process and the services it keeps."""

    def __init__(
        self, record_id: str, name: str, host: str, pid: int, started: float
    ) -> None:
        self.id = record_id
        self.name = name  # the configuration's ``name``
        self.host = host
        self.pid = pid
        self.started = started
        self.stopped: float | None = None
        # section -> {"service", "queue", "instances", "stopped"}
        self.services: dict[str, dict[str, Any]] = {}
        # (section, when asked, who asked), oldest first, until taken.
        self.requests: tuple[tuple[str, float, str], ...] = ()

    def __repr__(self) -> str:
        return f"<SupervisorRecord {self.name} pid {self.pid} on {self.host}>"


def supervisors_of(dispatch: model.Dispatch) -> Any:
    """The supervisor records (created in databases made before them)."""
    return model.tree_attribute(dispatch, "supervisors")


def register(
    dispatch: model.Dispatch,
    name: str,
    services: dict[str, dict[str, Any]],
    now: float | None = None,
) -> SupervisorRecord:
    """Record this process as a supervisor of *services* (section ->
    ``{"service", "queue", "instances"}``); returns its record.  An earlier
    record of the same name on this host (a supervisor killed before it
    could say it stopped) is marked stopped."""
    now = time.time() if now is None else now
    for earlier in running(dispatch):
        if (earlier.name, earlier.host) == (name, broker.HOST):
            earlier.stopped = now  # killed: this one took its place
    record = SupervisorRecord(model.new_id(), name, broker.HOST, os.getpid(), now)
    record.services = {
        section: {**fields, "stopped": 0} for section, fields in services.items()
    }
    supervisors_of(dispatch)[record.id] = record
    return record


def running(dispatch: model.Dispatch) -> list[SupervisorRecord]:
    """The supervisors that have not stopped, oldest first."""
    records = getattr(dispatch, "supervisors", None) or {}
    return [record for record in records.values() if record.stopped is None]


def request_start(
    dispatch: model.Dispatch,
    record_id: str,
    section: str,
    who: str,
    now: float | None = None,
) -> SupervisorRecord:
    """Ask supervisor *record_id* to start a stopped instance of *section*."""
    now = time.time() if now is None else now
    record = (getattr(dispatch, "supervisors", None) or {}).get(record_id)
    if record is None or record.stopped is not None:
        raise NoSuchService(f"no running supervisor {record_id!r} (see /services)")
    if section not in record.services:
        known = ", ".join(sorted(record.services)) or "none"
        raise NoSuchService(
            f"supervisor {record.name} keeps no service {section!r}; it keeps: {known}"
        )
    if not record.services[section]["stopped"]:
        raise SupervisorError(f"every instance of {section} is running: stop one first")
    record.requests = (*record.requests, (section, now, who))
    return record


def take_requests(record: SupervisorRecord) -> list[str]:
    """The sections of *record*'s pending start requests, which it forgets."""
    sections = [section for section, _when, _who in record.requests]
    if sections:
        record.requests = ()
    return sections


def note_stopped(record: SupervisorRecord, section: str, stopped: int) -> None:
    """Record that *stopped* instances of *section* are stopped now."""
    if record.services[section]["stopped"] != stopped:
        services = dict(record.services)
        services[section] = {**services[section], "stopped": stopped}
        record.services = services


def document(record: SupervisorRecord) -> dict[str, Any]:
    """A JSON-ready description of *record*."""
    return {
        "id": record.id,
        "name": record.name,
        "host": record.host,
        "pid": record.pid,
        "started": record.started,
        "services": [
            {
                "section": section,
                **fields,
                "requested": any(
                    asked == section for asked, _when, _who in record.requests
                ),
            }
            for section, fields in sorted(record.services.items())
        ],
    }
