"""Who may act: the token, the login cookie, the proxy's user header, and
CSRF protection for forms.

Reading needs no login (the console binds loopback by default); anything
that changes state does.  A request may act when it carries

- ``Authorization: Bearer TOKEN`` (scripts and the JSON API), or
- the login cookie, set by ``POST /login`` with the token, or
- the configured ``user-header`` of an authenticating reverse proxy.

The token lives in a 0600 file written by ``dispatch web --new-token``.
The cookie holds a digest of it, never the token itself, so it stops
working when a new token is made.  A browser sends cookies and a proxy's
header on its own, even for a form another site made it post, so those two
ways also need the CSRF token: a random value in a cookie that each form
repeats in a hidden field (only a page of this origin can read it).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass

from aiohttp import web

from dispatch.web.errors import ConsoleError
from dispatch.web.tokens import TokenFileError, new_token, read_token

logger = logging.getLogger(__name__)

SESSION_COOKIE = "dispatch_session"
CSRF_COOKIE = "dispatch_csrf"
__all__ = ["TokenFileError", "new_token", "read_token"]
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
# Where a request keeps its CSRF value for the page (and the response),
# and whether the response must set it.
CSRF_KEY = web.RequestKey("csrf", str)
NEW_CSRF_KEY = web.RequestKey("csrf_is_new", bool)


def session_value(token: str) -> str:
    """The login cookie's value for *token*: a digest, not the token."""
    return hmac.new(token.encode(), b"dispatch web session", hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Actor:
    """Who is acting, and whether the browser sent the credential on its
    own (a cookie or the proxy's header: then CSRF must be checked)."""

    name: str
    ambient: bool


@dataclass(frozen=True)
class Gate:
    """The console's credentials: the token (None: none made yet) and the
    proxy's header (None: no proxy trusted)."""

    token: str | None
    user_header: str | None = None

    def actor(self, request: web.Request) -> Actor | None:
        """Who *request* acts for, or None when it carries no credential."""
        if self.token is not None:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() == "bearer" and _same(given.strip(), self.token):
                return Actor("token", ambient=False)
            cookie = request.cookies.get(SESSION_COOKIE, "")
            if cookie and _same(cookie, session_value(self.token)):
                return Actor("login", ambient=True)
        if self.user_header is not None:
            user = request.headers.get(self.user_header, "").strip()
            if user:
                return Actor(user, ambient=True)
        return None

    def check_token(self, given: str) -> bool:
        """True when *given* is the token."""
        return self.token is not None and _same(given.strip(), self.token)

    async def require(self, request: web.Request) -> Actor:
        """The actor of a request that changes state: 401 without a
        credential, 403 when a cookie or proxy header comes without the
        form's CSRF token."""
        actor = self.actor(request)
        if actor is None:
            if self.token is None and self.user_header is None:
                raise ConsoleError(
                    401,
                    "no login is set up: run `dispatch web --new-token` "
                    "and restart the console",
                )
            raise ConsoleError(
                401, "log in first (/login), or send Authorization: Bearer TOKEN"
            )
        if actor.ambient:
            await require_csrf(request)
        return actor


async def require_csrf(request: web.Request) -> None:
    """403 unless the form field or header repeats the CSRF cookie."""
    expected = request.cookies.get(CSRF_COOKIE, "")
    given = request.headers.get(CSRF_HEADER, "")
    if not given and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        form = await request.post()
        field = form.get(CSRF_FIELD, "")
        given = field if isinstance(field, str) else ""
    if not expected or not _same(given, expected):
        raise ConsoleError(
            403, "the form's CSRF token is missing or stale: reload the page"
        )


def csrf_for(request: web.Request) -> str:
    """The CSRF value pages of *request* put in their forms: the cookie's,
    or a new one the response will set."""
    value = request.get(CSRF_KEY)
    if value is None:
        value = request.cookies.get(CSRF_COOKIE, "")
        if len(value) < 32:
            value = secrets.token_urlsafe(32)
            request[NEW_CSRF_KEY] = True
        request[CSRF_KEY] = value
    return value


def set_cookies(request: web.Request, response: web.StreamResponse) -> None:
    """Give the browser the CSRF cookie a page of this request made."""
    if request.get(NEW_CSRF_KEY):
        response.set_cookie(
            CSRF_COOKIE,
            request[CSRF_KEY],
            httponly=True,
            samesite="Strict",
            path="/",
            secure=request.secure,
        )


def log_in(request: web.Request, response: web.StreamResponse, token: str) -> None:
    """Set the login cookie for *token* on *response* (sent back over
    TLS only when *request* came over TLS)."""
    response.set_cookie(
        SESSION_COOKIE,
        session_value(token),
        httponly=True,
        samesite="Strict",
        path="/",
        secure=request.secure,
    )


def log_out(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/")


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison (a timing leak would reveal the token)."""
    return hmac.compare_digest(given.encode(), expected.encode())
