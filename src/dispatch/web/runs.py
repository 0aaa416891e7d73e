"""Runs: the list (``/runs``, filtered by state, by a service the recipe
sends to, by recipe name and by age, paginated; read from the run index
of :mod:`dispatch.state.runindex`), a run's page (``/runs/ID``: steps, attempts,
exit codes, output tails) with its step graph (SVG, :mod:`~dispatch.web.stepgraph`) and the cancel and retry buttons, which call
what ``dispatch cancel`` and ``dispatch retry`` call."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import quote

from aiohttp import web
from ZODB.POSException import ReadOnlyError

from dispatch.state import admin, model, views
from dispatch.state.database import ensure_run_index
from dispatch.web import stepgraph
from dispatch.web.console import (
    CONSOLE,
    both,
    console,
    done,
    is_api,
    respond,
    see_other,
)
from dispatch.web.errors import bad_request, not_found, query_integer
from dispatch.web.settings import MAX_PAGE_SIZE

logger = logging.getLogger(__name__)

ROUTES = web.RouteTableDef()
# How many lines of a step's output the run page shows (the tail itself is
# bounded where it is recorded).
TAIL_LINES = 200


@ROUTES.get("/")
async def home(request: web.Request) -> web.StreamResponse:
    return see_other("/runs")


@both(ROUTES, "GET", "/runs")
async def runs_list(request: web.Request) -> web.StreamResponse:
    """A page of runs, newest first."""
    here = console(request)
    query = request.query
    status = query.get("state") or None
    if status is not None and status not in views.RUN_STATES:
        raise bad_request(
            f"state must be one of {', '.join(views.RUN_STATES)}, not {status!r}"
        )
    service = query.get("service") or None
    recipe = query.get("recipe") or None
    age = query.get("age") or None
    since = started_since(age, query.get("since") or None)
    page = query_integer(query, "page", 1, 1, 10**9)
    size = query_integer(query, "size", here.settings.page_size, 1, MAX_PAGE_SIZE)
    found = await here.read(
        lambda dispatch: views.list_runs(
            dispatch, status, service, page, size, recipe, since
        )
    )
    return respond(
        request,
        "runs.html",
        {
            "runs": found.rows,
            "page": found.page,
            "size": found.size,
            "has_next": found.has_next,
            "total": found.total,
            "state": status,
            "service": service,
            "recipe": recipe,
            "age": age,
            "since": since,
            "states": list(views.RUN_STATES),
        },
    )


def started_since(age: str | None, since: str | None) -> float | None:
    """The start time the age filter keeps runs from: ``age`` (``1h``,
    see views.parse_age) before now, or ``since`` (seconds since the
    epoch); a 400 for anything else, or both."""
    if age is not None and since is not None:
        raise bad_request("give age or since, not both")
    if age is not None:
        try:
            return time.time() - views.parse_age(age)
        except ValueError as error:
            raise bad_request(str(error)) from None
    if since is None:
        return None
    try:
        value = float(since)
    except ValueError:
        value = float("nan")
    if not 0 <= value < float("inf"):
        raise bad_request(
            f"since must be a time in seconds since the epoch, not {since!r}"
        )
    return value


def _run_page_document(dispatch: model.Dispatch, run_id: str) -> dict[str, Any]:
    try:
        document = views.run_document(dispatch, run_id)
    except views.RunNotFound as error:
        raise not_found(str(error)) from None
    for step in document["steps"]:
        for message in step["messages"]:
            for attempt in message["attempts"]:
                attempt["tail"] = output_tail(attempt)
    return document


def output_tail(attempt: dict[str, Any]) -> list[str]:
    """The last lines of an attempt's output (see views.output_tail)."""
    tail = views.output_tail(attempt)
    return tail.splitlines()[-TAIL_LINES:] if tail else []


@both(ROUTES, "GET", "/runs/{run_id}")
async def run_page(request: web.Request) -> web.StreamResponse:
    """One run: its steps, their messages and attempts."""
    run_id = request.match_info["run_id"]
    document = await console(request).read(
        lambda dispatch: _run_page_document(dispatch, run_id)
    )
    if is_api(request):
        return respond(request, "run.html", {"run": document})
    statuses = {step["node"]: step["status"] for step in document["steps"]}
    graph = stepgraph.render(document["recipe"], statuses)
    return respond(request, "run.html", {"run": document, "graph": graph})


@both(ROUTES, "POST", "/runs/{run_id}/cancel")
async def cancel(request: web.Request) -> web.StreamResponse:
    """``dispatch cancel RUN``."""
    here = console(request)
    actor = await here.gate.require(request)
    run_id = request.match_info["run_id"]

    def work(dispatch: model.Dispatch) -> dict[str, Any]:
        run = _find(dispatch, run_id)
        already = run.cancelled is not None
        withdrawn = admin.cancel_run(dispatch, run)
        return {"run": run_id, "withdrawn": withdrawn, "already": already}

    result = await here.write(work)
    logger.info("%s cancelled run %s", actor.name, run_id)
    return done(request, result, run_path(run_id))


@both(ROUTES, "POST", "/runs/{run_id}/retry")
async def retry(request: web.Request) -> web.StreamResponse:
    """``dispatch retry RUN [STEP]`` (the form's ``step`` field)."""
    here = console(request)
    actor = await here.gate.require(request)
    run_id = request.match_info["run_id"]
    form = await request.post()
    text = str(form.get("step", "") or request.query.get("step", ""))
    if text and not text.isdigit():
        raise bad_request(f"step must be a step number, not {text!r}")
    step = int(text) if text else None

    def work(dispatch: model.Dispatch) -> dict[str, Any]:
        run = _find(dispatch, run_id)
        try:
            revived = admin.retry_dead(dispatch, run, step)
        except ValueError as error:
            raise bad_request(str(error)) from None
        return {"run": run_id, "sent": [message.id for message in revived]}

    result = await here.write(work)
    logger.info("%s retried run %s: %s", actor.name, run_id, result["sent"])
    return done(request, result, run_path(run_id))


def _find(dispatch: model.Dispatch, run_id: str) -> model.Run:
    try:
        return views.find_run(dispatch, run_id)
    except views.RunNotFound as error:
        raise not_found(str(error)) from None


def run_path(run_id: str) -> str:
    """The run page's path (the id quoted whole: it may hold a "/")."""
    return "/runs/" + quote(run_id, safe="")


async def _index_runs(application: web.Application) -> None:
    """Build the run index of a database made before it, once, as the
    console starts (see :func:`dispatch.state.database.ensure_run_index`)."""
    here = application[CONSOLE]
    try:
        await asyncio.get_running_loop().run_in_executor(
            here.workers, ensure_run_index, here.database
        )
    except ReadOnlyError:
        logger.warning(
            "the storage is read-only: runs are listed by a scan until a "
            "writer (`dispatch go`, a service) builds the run index"
        )


def install(application: web.Application) -> None:
    """Index the runs (if need be) when *application* starts."""
    application.on_startup.append(_index_runs)
