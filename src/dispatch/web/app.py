"""The console's application: :func:`create_app` puts the areas together
(:mod:`~dispatch.web.runs`, :mod:`~dispatch.web.deadletters`,
:mod:`~dispatch.web.services`, :mod:`~dispatch.web.zeofigures`,
:mod:`~dispatch.web.metrics`, :mod:`~dispatch.web.login`,
:mod:`~dispatch.web.spawn`, :mod:`~dispatch.web.jobs`,
:mod:`~dispatch.web.events`, :mod:`~dispatch.web.jobevents`) with the error
middleware: a refused request is answered with its message (JSON
``{"error"}`` under ``/api/``, a page elsewhere), never a traceback.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from dispatch.web import (
    auth,
    deadletters,
    events,
    jobevents,
    jobs,
    login,
    metrics,
    runs,
    services,
    spawn,
    zeofigures,
)
from dispatch.web.console import (
    CONSOLE,
    HERE,
    SECURITY_HEADERS,
    STATE_THREADS,
    Console,
    Handler,
    is_api,
    respond,
    templates,
)
from dispatch.web.errors import ConsoleError
from dispatch.web.kernel import Kernel
from dispatch.web.settings import WebSettings
from papa.slurm import assets
from zeo.address import Address

logger = logging.getLogger(__name__)


@web.middleware
async def refusals(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer a refused request with its message; give the browser the
    CSRF cookie a page made."""
    try:
        response = await handler(request)
    except ConsoleError as error:
        response = _refusal(request, error.status, error.message)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        response = _refusal(request, error.status, error.reason)
    except Exception:
        # A bug: the browser gets no traceback (it may hold state), the log does.
        logger.exception("%s %s failed", request.method, request.path)
        response = _refusal(request, 500, "the console failed: see its log")
    auth.set_cookies(request, response)
    return response


def _refusal(request: web.Request, status: int, message: str) -> web.Response:
    response = respond(
        request, "error.html", {"error": message, "status": status}, status
    )
    if status == 401 and is_api(request):
        response.headers["WWW-Authenticate"] = 'Bearer realm="dispatch"'
    return response


async def _stop_workers(application: web.Application) -> None:
    application[CONSOLE].workers.shutdown(wait=True)


async def _spawn_script(request: web.Request) -> web.Response:
    """``/static/spawn.js``: the spawn form's tabs, papa's shared script."""
    return web.Response(
        body=assets.spawn_script(), content_type="application/javascript"
    )


async def _secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def create_app(
    database: Any, settings: WebSettings, zeo_address: Address
) -> web.Application:
    """The console on *database* (a ZODB DB on the zeo server at
    *zeo_address*), as *settings* say; the token is read once, now."""
    application = web.Application(middlewares=[refusals])
    application[CONSOLE] = Console(
        database,
        settings,
        zeo_address,
        auth.Gate(auth.read_token(settings.token_file), settings.user_header),
        templates(),
        ThreadPoolExecutor(STATE_THREADS, thread_name_prefix="dispatch-web-state"),
        Kernel(settings.papa_address()),
    )
    application.on_cleanup.append(_stop_workers)
    areas = (runs, deadletters, services, zeofigures, metrics, login, events)
    for area in (*areas, spawn, jobs, jobevents):
        application.add_routes(area.ROUTES)
    events.install(application)
    jobevents.install(application)
    runs.install(application)
    # spawn.js is papa's (JupyterHub's spawner serves it too); before the
    # directory, whose prefix would otherwise answer for it.
    application.router.add_get("/static/spawn.js", _spawn_script)
    application.router.add_static("/static", HERE / "static")
    application.on_response_prepare.append(_secure_headers)
    return application
