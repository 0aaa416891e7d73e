"""Dead letters: the list, one letter (with the document ``dlq-purge``
would write for it), and the reinject and purge buttons, which call what
``dispatch dlq-reinject`` and ``dispatch dlq-purge`` call.  Purged letters
go to the configured ``dlq-location``: nothing from the request names a
path."""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any

from aiohttp import web

from dispatch.state import deadletters, model, views
from dispatch.web.console import both, console, done, respond
from dispatch.web.errors import bad_request, not_found, query_integer
from dispatch.web.runs import run_path
from dispatch.web.settings import MAX_PAGE_SIZE

logger = logging.getLogger(__name__)

ROUTES = web.RouteTableDef()


def _page(dispatch: model.Dispatch, page: int, size: int) -> dict[str, Any]:
    ids = views.keys_newest_first(dispatch.dead_letters)
    chosen = list(itertools.islice(ids, (page - 1) * size, page * size + 1))
    letters = [
        views.dead_letter_document(dispatch.dead_letters[message_id])
        for message_id in chosen[:size]
    ]
    return {
        "dead_letters": letters,
        "total": dispatch.dead_count(),
        "counts": deadletters.dead_letter_counts(dispatch) if page == 1 else None,
        "page": page,
        "size": size,
        "has_next": len(chosen) > size,
    }


@both(ROUTES, "GET", "/dead-letters")
async def dead_letters_list(request: web.Request) -> web.StreamResponse:
    """A page of dead letters, newest first, and their counts per queue."""
    here = console(request)
    page = query_integer(request.query, "page", 1, 1, 10**9)
    size = query_integer(
        request.query, "size", here.settings.page_size, 1, MAX_PAGE_SIZE
    )
    data = await here.read(lambda dispatch: _page(dispatch, page, size))
    return respond(request, "dead_letters.html", data)


def _letter(dispatch: model.Dispatch, message_id: str) -> dict[str, Any]:
    try:
        message = deadletters.find_dead_letter(dispatch, message_id)
    except deadletters.DeadLetterError as error:
        raise not_found(str(error)) from None
    return {
        "letter": views.dead_letter_document(message),
        "document": deadletters.export_document(dispatch, message, time.time()),
    }


@both(ROUTES, "GET", "/dead-letters/{message_id}")
async def dead_letter_page(request: web.Request) -> web.StreamResponse:
    message_id = request.match_info["message_id"]
    data = await console(request).read(lambda dispatch: _letter(dispatch, message_id))
    return respond(request, "dead_letter.html", data)


@both(ROUTES, "POST", "/dead-letters/{message_id}/reinject")
async def reinject(request: web.Request) -> web.StreamResponse:
    """Send one dead letter back to its step (or to the form's
    ``destination`` queue) as a new message of its run."""
    here = console(request)
    actor = await here.gate.require(request)
    message_id = request.match_info["message_id"]
    form = await request.post()
    destination = str(form.get("destination", "") or "").strip() or None

    def work(dispatch: model.Dispatch) -> dict[str, Any]:
        try:
            message = deadletters.find_dead_letter(dispatch, message_id)
        except deadletters.DeadLetterError as error:
            raise not_found(str(error)) from None
        try:
            new_id = deadletters.reinject_dead_letter(dispatch, message_id, destination)
        except deadletters.DeadLetterError as error:
            raise bad_request(str(error)) from None
        return {"dead_letter": message_id, "run": message.run_id, "message": new_id}

    result = await here.write(work)
    logger.info("%s re-injected %s as %s", actor.name, message_id, result["message"])
    return done(request, result, run_path(result["run"]))


@both(ROUTES, "POST", "/dead-letters/purge")
async def purge(request: web.Request) -> web.StreamResponse:
    """Move dead letters to files in the configured location: those of
    the form's ``queue`` (all queues when empty), or one ``message``."""
    here = console(request)
    actor = await here.gate.require(request)
    form = await request.post()
    queue = str(form.get("queue", "") or "").strip()
    message_id = str(form.get("message", "") or "").strip()
    location = here.settings.dlq_location

    def work(dispatch: model.Dispatch) -> dict[str, Any]:
        if message_id and message_id not in dispatch.dead_letters:
            raise not_found(f"no dead letter {message_id!r} (see /dead-letters)")
        written = deadletters.purge(
            dispatch,
            location,
            {queue} if queue else None,
            message_ids={message_id} if message_id else None,
        )
        return {"written": [str(path) for path in written]}

    result = await here.write(work)
    logger.info("%s purged %d dead letter(s)", actor.name, len(result["written"]))
    return done(request, result, "/dead-letters")
