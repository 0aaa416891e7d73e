"""A console with a real papa kernel on the real Slurm cluster behind it,
for the spawn and jobs pages (tests/dispatch/test_web_spawn.py and the
browser tests in tests/browser)."""

import html
import json
import os
import re
from types import SimpleNamespace

import pytest

import zeo
from dispatch.web.settings import WebSettings
from dispatch.web.tokens import new_token
from tests.dispatch.webconsole import Browser, ConsoleServer, csrf_of
from tests.support.slurm import SlurmKernel, sinfo_answer  # noqa: F401

RECIPE = {
    "description": "a Slurm job from the spawn page",
    "1": {"service": "Slurm job", "command": ["hostname"], "slurm": {"runtime": "1"}},
    "start": [[1, {}]],
}


def require_slurm():
    """Skip the test, with the reason, when no Slurm cluster answers
    (fail it instead under ZEOPAPA_REQUIRE_SLURM)."""
    reason = sinfo_answer()
    if reason is not None:
        if os.environ.get("ZEOPAPA_REQUIRE_SLURM"):
            pytest.fail(f"ZEOPAPA_REQUIRE_SLURM is set but {reason}")
        pytest.skip(reason)


def logged_in(browser, token):
    """Log *browser* in with *token* (the login form, with its CSRF)."""
    page = browser.get("/login")
    reply = browser.post("/login", {"token": token, "csrf": csrf_of(page)})
    assert reply.status == 303, reply
    return csrf_of(browser.get("/spawn"))


def start(runzeo, tmp_path):
    """runzeo's database, a Slurm kernel and the console on both; call
    ``stop()`` on the result."""
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "one-job.json").write_text(json.dumps(RECIPE))
    kernel = SlurmKernel(tmp_path, state_dir=tmp_path / "papa-state").start()
    database = zeo.DB(runzeo.address)
    token = new_token(tmp_path / "web.token")
    settings = WebSettings(
        token_file=str(tmp_path / "web.token"),
        dlq_location=str(tmp_path / "DLQ"),
        papa=str(kernel.port_or_path),
        recipe_dir=str(recipes),
    )
    server = ConsoleServer(database, settings, runzeo.address)

    def stop():
        server.stop()
        database.close()
        kernel.stop()

    return SimpleNamespace(
        browser=Browser(server.port),
        token=token,
        bearer={"Authorization": f"Bearer {token}"},
        database=database,
        kernel=kernel,
        port=server.port,
        stop=stop,
    )


def field_error(page, field):
    """The error the page shows beside *field* (None: none)."""
    found = re.search(rf'id="error-{field}"[^>]*>([^<]*)<', page.text)
    return html.unescape(found.group(1)) if found else None
