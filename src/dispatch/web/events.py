"""Live updates: ``/api/events``, a stream of server-sent events, one
``commit`` event per transaction committed to zeo (several in a burst are
sent as one).  Pages marked ``data-live`` fetch themselves again when one
arrives (``static/console.js``).  ``/api/runs/ID/tails`` streams a run's
output tails: a ``tail`` event per attempt whose committed tail changed
(``{"node", "message", "attempt", "tail"}``), read again after each
commit; the run page writes them into its ``<pre data-tail>`` blocks.

Nothing polls: one zeo ``watch`` per console (the client storage calls it
on its dispatcher thread for every committed transaction) hands each
transaction id to the event loop, which passes it to every open stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from dispatch.state import views
from dispatch.web.console import CONSOLE, console
from dispatch.web.errors import not_found

logger = logging.getLogger(__name__)

ROUTES = web.RouteTableDef()
# A comment line this often keeps proxies from closing a quiet stream, and
# finds streams whose browser went away.
KEEP_ALIVE = 15.0


class Hub:
    """The open event streams of one console, fed by one zeo watch."""

    def __init__(self) -> None:
        self.streams: set[asyncio.Queue[str | None]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.watch: Any = None

    def start(self, storage: Any) -> None:
        """Watch *storage* (a zeo client storage) from now on; a storage
        without ``watch`` (not zeo's) gives streams that stay quiet."""
        self.loop = asyncio.get_running_loop()
        watch = getattr(storage, "watch", None)
        if watch is None:
            logger.warning("%r cannot be watched: no live updates", storage)
            return
        self.watch = watch(self._committed)

    def _committed(self, tid: bytes, oids: Any) -> None:
        # On the storage's dispatcher thread: hand over to the loop.
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._publish, tid.hex())

    def _publish(self, tid: str) -> None:
        for stream in self.streams:
            stream.put_nowait(tid)

    def open(self) -> asyncio.Queue[str | None]:
        stream: asyncio.Queue[str | None] = asyncio.Queue()
        self.streams.add(stream)
        return stream

    def close(self, stream: asyncio.Queue[str | None]) -> None:
        self.streams.discard(stream)

    def stop(self) -> None:
        """End every stream and the watch (the console is stopping)."""
        if self.watch is not None:
            self.watch.close()
            self.watch = None
        for stream in self.streams:
            stream.put_nowait(None)


HUB = web.AppKey("events", Hub)


async def start_hub(application: web.Application) -> None:
    application[HUB].start(application[CONSOLE].database.storage)


async def stop_hub(application: web.Application) -> None:
    application[HUB].stop()


def install(application: web.Application) -> None:
    """Give *application* its hub, started and stopped with it."""
    application[HUB] = Hub()
    application.on_startup.append(start_hub)
    application.on_shutdown.append(stop_hub)


async def open_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    await response.write(b"event: ready\ndata: {}\n\n")
    return response


async def commit_ids(
    response: web.StreamResponse, stream: asyncio.Queue[str | None]
) -> AsyncIterator[str]:
    """The id of each commit (the last of a burst) until the console
    stops; keep-alive comments in between."""
    while True:
        try:
            tid = await asyncio.wait_for(stream.get(), KEEP_ALIVE)
        except TimeoutError:
            await response.write(b": keep-alive\n\n")
            continue
        if tid is None:
            return
        while not stream.empty():
            following = stream.get_nowait()
            if following is None:
                return
            tid = following
        yield tid


@ROUTES.get("/api/events")
async def events(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    response = await open_stream(request)
    stream = hub.open()
    try:
        # A burst of commits is one event: the page fetches itself once.
        async for tid in commit_ids(response, stream):
            await response.write(
                f'event: commit\ndata: {{"tid": "{tid}"}}\n\n'.encode()
            )
    except ConnectionResetError:
        logger.debug("an event stream's browser went away")
    finally:
        hub.close(stream)
    return response


async def _send_changed(
    response: web.StreamResponse, sent: dict[str, str], found: dict[str, Any]
) -> None:
    """A ``tail`` event for each entry of *found* whose tail is not the
    one last *sent*."""
    for key, entry in found.items():
        if sent.get(key) != entry["tail"]:
            sent[key] = entry["tail"]
            data = json.dumps(entry)
            await response.write(f"event: tail\ndata: {data}\n\n".encode())


@ROUTES.get("/api/runs/{run_id}/tails")
async def tails(request: web.Request) -> web.StreamResponse:
    """Run *run_id*'s output tails, each again whenever a commit changed it."""
    run_id = request.match_info["run_id"]
    here = console(request)

    async def read() -> dict[str, dict[str, Any]]:
        try:
            return await here.read(lambda d: views.output_tails(d, run_id))
        except views.RunNotFound as error:
            raise not_found(str(error)) from None

    hub = request.app[HUB]
    stream = hub.open()  # before the first read: no commit falls between
    try:
        current = await read()
    except BaseException:
        hub.close(stream)
        raise
    response = await open_stream(request)
    sent: dict[str, str] = {}
    try:
        await _send_changed(response, sent, current)
        async for _tid in commit_ids(response, stream):
            await _send_changed(response, sent, await read())
    except ConnectionResetError:
        logger.debug("a tail stream's browser went away")
    finally:
        hub.close(stream)
    return response
