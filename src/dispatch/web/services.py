"""Services: the running ``dispatch service`` instances, as their records
in zeo say (service, queue, host, pid, when started, whether asked to
stop), and a stop button per instance, which asks what ``dispatch shutdown
ID`` asks: the instance sees its record, finishes its current message and
exits 0, and ``dispatch supervise`` does not start it again on its own (a
clean stop).  The supervisors running in zeo's records (see
:mod:`dispatch.state.supervisors`) are listed with their services, and a
Start button per service with a stopped instance writes a start request on
the supervisor's record: the supervisor, watching it, starts the instance."""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web

from dispatch.state import admin, model, supervisors, views
from dispatch.web.console import both, console, done, respond
from dispatch.web.errors import ConsoleError, bad_request, not_found

logger = logging.getLogger(__name__)

ROUTES = web.RouteTableDef()


# An instance whose last heartbeat is older is shown as stale (dispatch
# status's default --within).
STALE_AFTER = 60.0


def _instances(dispatch: model.Dispatch) -> dict[str, Any]:
    return {
        "instances": views.live_instances(dispatch, time.time(), STALE_AFTER),
        "supervisors": [
            supervisors.document(record) for record in supervisors.running(dispatch)
        ],
    }


@both(ROUTES, "GET", "/services")
async def services_list(request: web.Request) -> web.StreamResponse:
    data = await console(request).read(_instances)
    return respond(request, "services.html", data)


@both(ROUTES, "POST", "/services/{instance_id}/stop")
async def stop(request: web.Request) -> web.StreamResponse:
    """``dispatch shutdown INSTANCE``: ask one instance to stop."""
    here = console(request)
    actor = await here.gate.require(request)
    instance_id = request.match_info["instance_id"]

    def work(dispatch: model.Dispatch) -> dict[str, Any]:
        running = {i.id for i in views.running_instances(dispatch)}
        if instance_id not in running:
            raise not_found(f"no running instance {instance_id!r} (see /services)")
        asked = [
            instance.id
            for instance in admin.request_shutdown(dispatch, instance_id)
            if instance.id == instance_id
        ]
        return {"instance": instance_id, "asked": bool(asked)}

    result = await here.write(work)
    logger.info("%s asked instance %s to stop", actor.name, instance_id)
    return done(request, result, "/services")


@both(ROUTES, "POST", "/services/start")
async def start(request: web.Request) -> web.StreamResponse:
    """Ask a supervisor (the form's ``supervisor``) to start a stopped
    instance of one of its services (``service``, the section's name)."""
    here = console(request)
    actor = await here.gate.require(request)
    form = await request.post()
    record_id = str(form.get("supervisor", "") or "").strip()
    section = str(form.get("service", "") or "").strip()
    if not record_id or not section:
        raise bad_request("give the supervisor and the service to start")

    def work(dispatch: model.Dispatch) -> dict[str, Any]:
        try:
            supervisors.request_start(dispatch, record_id, section, actor.name)
        except supervisors.SupervisorError as error:
            missing = isinstance(error, supervisors.NoSuchService)
            raise ConsoleError(404 if missing else 409, str(error)) from None
        return {"supervisor": record_id, "service": section, "requested": True}

    result = await here.write(work)
    logger.info("%s asked supervisor %s to start %s", actor.name, record_id, section)
    return done(request, result, "/services")
