"""Services: the running ``dispatch service`` instances, as their records
in zeo say (service, queue, host, pid, when started, whether asked to
stop)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dispatch.state import model, views
from dispatch.web.console import both, console, respond

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
