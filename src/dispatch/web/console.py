"""What the areas of the console share: state in zeo read or changed in
a worker thread (ZODB blocks; the event loop must not), one way to answer
with a page or its JSON, and the page templates.

Every page ``/X`` has its JSON at ``/api/X``: both routes go to the same
handler, which gives :func:`respond` the data once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import jinja2
from aiohttp import web
from ZODB.POSException import ConflictError

from dispatch.state import model
from dispatch.state.database import dispatch_state, write_retried
from dispatch.web import auth
from dispatch.web.errors import ConsoleError
from dispatch.web.kernel import Kernel
from dispatch.web.settings import WebSettings
from papa.slurm import assets
from zeo.address import Address
from zeo.exceptions import ClientDisconnected

logger = logging.getLogger(__name__)

HERE = Path(__file__).parent
API_PREFIX = "/api/"
# A write that keeps conflicting with consumers committing at the same time
# is tried this often before the request is answered 409.
WRITE_ATTEMPTS = 5
# Pages may load scripts and styles of this origin only, never inline ones:
# even a field that escaped escaping could not run.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        "img-src 'self'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

Result = TypeVar("Result")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Console:
    """What every handler needs: the database, the settings, the zeo
    server's address (for ``ruok``), who may act, the templates, the
    threads that read and write the state and the papa kernel."""

    database: Any
    settings: WebSettings
    zeo_address: Address
    gate: auth.Gate
    templates: jinja2.Environment
    # State is read by a few threads only: each holds a connection, and a
    # connection's cache is only warm if it is used again.
    workers: ThreadPoolExecutor
    # The papa kernel the spawn and jobs pages act through.
    kernel: Kernel

    async def read(self, function: Callable[[model.Dispatch], Result]) -> Result:
        """``function(dispatch)`` in a read-only transaction of its own."""

        def work() -> Result:
            with dispatch_state(self.database) as dispatch:
                return function(dispatch)

        return await self._in_thread(work)

    async def write(self, function: Callable[[model.Dispatch], Result]) -> Result:
        """``function(dispatch)`` in a transaction committed at the end,
        tried again when it conflicts (a 409 if it keeps conflicting)."""

        def work() -> Result:
            try:
                return write_retried(self.database, function, WRITE_ATTEMPTS)
            except ConflictError:
                raise ConsoleError(
                    409, "the state kept changing under us: try again"
                ) from None

        return await self._in_thread(work)

    async def _in_thread(self, work: Callable[[], Result]) -> Result:
        try:
            return await asyncio.get_running_loop().run_in_executor(self.workers, work)
        except ClientDisconnected as error:
            raise ConsoleError(
                503, f"the zeo server cannot be reached: {error}"
            ) from None


CONSOLE = web.AppKey("console", Console)
# Threads reading and writing dispatch state (see Console.workers).
STATE_THREADS = 2


def console(request: web.Request) -> Console:
    return request.app[CONSOLE]


def is_api(request: web.Request) -> bool:
    return request.path.startswith(API_PREFIX)


def respond(
    request: web.Request, template: str, data: dict[str, Any], status: int = 200
) -> web.Response:
    """*data* as JSON under ``/api/``, else rendered with *template*."""
    if is_api(request):
        return json_response(data, status)
    return render(request, template, data, status)


def json_response(data: dict[str, Any], status: int = 200) -> web.Response:
    """*data* as JSON; times and other values JSON lacks become text."""
    return web.json_response(
        data, status=status, dumps=lambda value: json.dumps(value, default=str)
    )


def render(
    request: web.Request, template: str, data: dict[str, Any], status: int = 200
) -> web.Response:
    """The page *template* with *data* (every field autoescaped)."""
    here = console(request)
    page = here.templates.get_template(template).render(
        csrf=auth.csrf_for(request),
        actor=here.gate.actor(request),
        path=request.path,
        **data,
    )
    return web.Response(text=page, status=status, content_type="text/html")


def done(request: web.Request, data: dict[str, Any], page: str) -> web.Response:
    """The answer to an action: its *data* as JSON under ``/api/``, else a
    303 to *page* (so a reload does not post the form again)."""
    if is_api(request):
        return json_response(data)
    return see_other(page)


def see_other(page: str) -> web.Response:
    """A 303 to *page*, a path of this console."""
    return web.Response(status=303, headers={"Location": page})


def both(
    routes: web.RouteTableDef, method: str, path: str
) -> Callable[[Handler], Handler]:
    """Register a handler for the page *path* and for ``/api`` + *path*."""

    def register(handler: Handler) -> Handler:
        routes.route(method, path)(handler)
        routes.route(method, "/api" + path)(handler)
        return handler

    return register


def when(timestamp: float | None) -> str:
    """A time as the pages show it (``-`` for none)."""
    if not timestamp:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def templates() -> jinja2.Environment:
    """The page templates, every ``{{ field }}`` escaped."""
    environment = jinja2.Environment(
        # The spawn form's fields and partitions table are papa's, shared
        # with JupyterHub's spawner (papa.hub.form).
        loader=jinja2.ChoiceLoader(
            [
                jinja2.FileSystemLoader(HERE / "templates"),
                assets.loader(),
            ]
        ),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["when"] = when
    # A run id may hold any character, "/" too: quote it all in a link.
    environment.filters["segment"] = lambda value: quote(str(value), safe="")
    return environment
