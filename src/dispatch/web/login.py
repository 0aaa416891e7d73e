"""Logging in with the token (a form, for browsers) and out.  The login
form carries the CSRF token too, so another site cannot log a browser in
under a token of its choosing."""

from __future__ import annotations

import logging

from aiohttp import web

from dispatch.web import auth
from dispatch.web.console import console, render, see_other
from dispatch.web.errors import ConsoleError

logger = logging.getLogger(__name__)

ROUTES = web.RouteTableDef()


@ROUTES.get("/login")
async def login_page(request: web.Request) -> web.StreamResponse:
    return render(request, "login.html", {"error": None})


@ROUTES.post("/login")
async def login(request: web.Request) -> web.StreamResponse:
    here = console(request)
    await auth.require_csrf(request)
    form = await request.post()
    given = form.get("token", "")
    if not isinstance(given, str) or not here.gate.check_token(given):
        logger.warning("a login with a wrong token from %s", request.remote)
        if here.gate.token is None:
            raise ConsoleError(
                401, "no token is set up: run `dispatch web --new-token`"
            )
        return render(request, "login.html", {"error": "wrong token"}, status=401)
    assert here.gate.token is not None  # check_token passed
    response = see_other("/runs")
    auth.log_in(request, response, here.gate.token)
    return response


@ROUTES.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    await auth.require_csrf(request)
    response = see_other("/login")
    auth.log_out(response)
    return response
