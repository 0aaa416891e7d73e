"""zeo: the ``ruok`` figures of each storage of the server the console
reads from (connections, commit lock, invalidation queue, ...)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from dispatch.web.console import both, console, respond
from dispatch.web.errors import ConsoleError
from zeo.address import Address
from zeo.probe import ruok

logger = logging.getLogger(__name__)

ROUTES = web.RouteTableDef()
# A server that does not answer ruok this fast is reported as down.
RUOK_TIMEOUT = 5.0


def is_direct(address: Address) -> bool:
    """The console opened the database itself (dispatch.conf's ``<zodb>``,
    ``zodb:PATH``): there is no zeo server to ask."""
    return isinstance(address, str) and address.startswith("zodb:")


async def zeo_figures(address: Address) -> dict[str, dict[str, Any]]:
    """``{storage: {figure: value}}`` from the server at *address* (none
    without a server); OSError when it does not answer."""
    if is_direct(address):
        return {}
    return await asyncio.to_thread(ruok, address, RUOK_TIMEOUT)


@both(ROUTES, "GET", "/zeo")
async def zeo_page(request: web.Request) -> web.StreamResponse:
    address = console(request).zeo_address
    if is_direct(address):
        raise ConsoleError(
            404, "no zeo server: this console opens the database directly (<zodb>)"
        )
    try:
        storages = await zeo_figures(address)
    except OSError as error:
        raise ConsoleError(
            503, f"zeo at {address!r} does not answer: {error}"
        ) from None
    return respond(
        request, "zeo.html", {"address": address_text(address), "storages": storages}
    )


def address_text(address: Address) -> str:
    """*address* as it is written in a configuration."""
    if isinstance(address, str):
        return address
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
