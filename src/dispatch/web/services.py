"""Services: the running ``dispatch service`` instances, as their records
in zeo say (service, queue, host, pid, when started, whether asked to
stop), and a stop button per instance, which asks what ``dispatch shutdown
ID`` asks: the instance sees its record, finishes its current message and
exits 0, and ``dispatch supervise`` does not start it again (a clean stop)."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from dispatch.state import admin, model, views
from dispatch.web.console import both, console, done, respond
from dispatch.web.errors import not_found

logger = logging.getLogger(__name__)

ROUTES = web.RouteTableDef()


def _instances(dispatch: model.Dispatch) -> dict[str, Any]:
    return {
        "instances": [
            views.instance_document(instance)
            for instance in views.running_instances(dispatch)
        ]
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
