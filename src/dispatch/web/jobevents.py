"""``/api/jobs/events``: the jobs pages live.  papa's processes and Slurm
jobs are kept by the kernel, not in zeo, and the kernel announces no change
of a job's state, so while at least one stream is open the console asks it
once a second for the jobs and their output tails (``list processes`` and
``peek``, which consume nothing) and sends a ``change`` event to every
stream when what the pages show changed; the page then fetches itself
(``static/console.js``, as on zeo's commits).  No stream open, no asking.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from dispatch.web import events
from dispatch.web.console import Console, console
from dispatch.web.errors import ConsoleError
from dispatch.web.jobs import job_rows

logger = logging.getLogger(__name__)

ROUTES = web.RouteTableDef()
# Seconds between two looks at the kernel while a jobs page is open.
POLL_SECONDS = 1.0


class JobsFeed:
    """The open jobs streams of one console and the task that feeds them."""

    def __init__(self) -> None:
        self.streams: set[asyncio.Queue[str | None]] = set()
        self.task: asyncio.Task[None] | None = None
        # Set once the task has taken its first look: a change after it is
        # announced.
        self.looked = asyncio.Event()

    def open(self, here: Console) -> asyncio.Queue[str | None]:
        stream: asyncio.Queue[str | None] = asyncio.Queue()
        self.streams.add(stream)
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._feed(here))
        return stream

    def close(self, stream: asyncio.Queue[str | None]) -> None:
        self.streams.discard(stream)

    async def _feed(self, here: Console) -> None:
        shown: Any = None
        try:
            while self.streams:
                try:
                    now: Any = await here.kernel.call(job_rows)
                except ConsoleError as error:
                    now = error.message  # the page shows the kernel is gone
                if self.looked.is_set() and now != shown:
                    for stream in self.streams:
                        stream.put_nowait("change")
                shown = now
                self.looked.set()
                await asyncio.sleep(POLL_SECONDS)
        except Exception:
            logger.exception("the jobs feed failed: jobs pages are no longer live")
        finally:
            self.task = None
            self.looked.set()  # no stream waits for a look that never comes
            self.looked = asyncio.Event()

    async def stop(self) -> None:
        """End every stream and the task (the console is stopping)."""
        for stream in self.streams:
            stream.put_nowait(None)
        if self.task is not None:
            self.task.cancel()


FEED = web.AppKey("jobs feed", JobsFeed)


async def _stop(application: web.Application) -> None:
    await application[FEED].stop()


def install(application: web.Application) -> None:
    application[FEED] = JobsFeed()
    application.on_shutdown.append(_stop)


@ROUTES.get("/api/jobs/events")
async def job_events(request: web.Request) -> web.StreamResponse:
    feed = request.app[FEED]
    stream = feed.open(console(request))
    try:
        # "ready" after the feed's first look: what changes later is sent.
        await feed.looked.wait()
        response = await events.open_stream(request)
        async for _change in events.commit_ids(response, stream):
            await response.write(b"event: change\ndata: {}\n\n")
    except ConnectionResetError:
        logger.debug("a jobs stream's browser went away")
    finally:
        feed.close(stream)
    return response
