"""The web console for tests: the real application served on a free port
of 127.0.0.1 by its own event loop in a thread, and a small browser that
keeps cookies (http.client, so requests go over a real socket)."""

import asyncio
import http.client
import json
import re
import threading
from http.cookies import SimpleCookie
from urllib.parse import urlencode

from aiohttp import web

from dispatch.web.app import create_app

START_TIMEOUT = 60


class ConsoleServer:
    """``create_app(...)`` listening on an ephemeral port until stop()."""

    def __init__(self, database, settings, zeo_address):
        self.application = create_app(database, settings, zeo_address)
        self.loop = asyncio.new_event_loop()
        self.port = None
        self.failure = None
        started = threading.Event()

        def serve():
            asyncio.set_event_loop(self.loop)
            runner = web.AppRunner(self.application)
            try:
                self.loop.run_until_complete(runner.setup())
                site = web.TCPSite(runner, "127.0.0.1", 0)
                self.loop.run_until_complete(site.start())
                self.port = runner.addresses[0][1]
            except BaseException as error:
                self.failure = error
                self.loop.close()
                started.set()
                return
            started.set()
            self.loop.run_forever()
            self.loop.run_until_complete(runner.cleanup())
            self.loop.close()

        self.thread = threading.Thread(target=serve, name="web console", daemon=True)
        self.thread.start()
        assert started.wait(START_TIMEOUT), "the console did not start"
        if self.failure is not None:
            raise self.failure

    def stop(self):
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(START_TIMEOUT)


class Reply:
    def __init__(self, response):
        self.status = response.status
        self.headers = response.headers
        self.body = response.read()
        self.text = self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.text)

    def __repr__(self):
        return f"<Reply {self.status} {self.text[:200]!r}>"


class Browser:
    """Requests to one console, keeping the cookies it sets, as a browser."""

    def __init__(self, port):
        self.port = port
        self.cookies = {}

    def request(self, method, path, form=None, headers=None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        sent = dict(headers or {})
        body = None
        if form is not None:
            body = urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            connection.request(method, path, body=body, headers=sent)
            reply = Reply(connection.getresponse())
        finally:
            connection.close()
        for header in reply.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                if morsel.value and morsel["max-age"] != "0":
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)
        return reply

    def get(self, path, headers=None):
        return self.request("GET", path, headers=headers)

    def post(self, path, form=None, headers=None):
        return self.request("POST", path, form=form or {}, headers=headers)


def csrf_of(page):
    """The CSRF token a page gives its forms."""
    found = re.search(r'name="csrf" value="([^"]+)"', page.text) or re.search(
        r'<meta name="csrf-token" content="([^"]+)"', page.text
    )
    assert found, f"no CSRF token in {page!r}"
    return found.group(1)
