"""Live updates: ``/api/events``, a stream of server-sent events, one
``commit`` event per transaction committed to zeo (several in a burst are
sent as one).  Pages marked ``data-live`` fetch themselves again when one
arrives (``static/console.js``).

Nothing polls: one zeo ``watch`` per console (the client storage calls it
on its dispatcher thread for every committed transaction) hands each
transaction id to the event loop, which passes it to every open stream.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from dispatch.web.console import CONSOLE

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


@ROUTES.get("/api/events")
async def events(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    stream = hub.open()
    try:
        await response.write(b"event: ready\ndata: {}\n\n")
        while True:
            try:
                tid = await asyncio.wait_for(stream.get(), KEEP_ALIVE)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if tid is None:
                break
            # A burst of commits is one event: the page fetches itself once.
            while not stream.empty():
                following = stream.get_nowait()
                if following is None:
                    return response
                tid = following
            await response.write(
                f'event: commit\ndata: {{"tid": "{tid}"}}\n\n'.encode()
            )
    except ConnectionResetError:
        logger.debug("an event stream's browser went away")
    finally:
        hub.close(stream)
    return response
