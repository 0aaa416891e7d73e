"""JupyterHub's spawn page in a real browser (Debian's chromium through
Playwright), against a real hub, proxy, papa kernel and Slurm cluster: log
in with the DummyAuthenticator, spawn from the Simple tab of the console's
form, reach jupyter-server through the proxy, stop it from the hub's home
page."""

from __future__ import annotations

import pytest

from tests.papa.hub.test_jupyterhub import PARTITIONS, SERVER_DEADLINE
from tests.support import wait_until
from tests.support.jupyterhub import DUMMY_PASSWORD, HubProcess
from tests.support.slurm import SlurmKernel, require_cluster

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
# Milliseconds Playwright waits for the server to start (a Slurm job).
SERVER_DEADLINE_MS = int(SERVER_DEADLINE * 1000)


@pytest.fixture
def hub(chromium, tmp_path):
    require_cluster()
    kernel = SlurmKernel(tmp_path, state_dir=tmp_path / "papa-state").start()
    try:
        process = HubProcess(tmp_path, kernel.port_or_path, PARTITIONS).start()
        try:
            yield process
        finally:
            if process.process is not None and process.process.poll() is None:
                process.api("DELETE", "/users/alice/server")
            process.stop()
    finally:
        kernel.stop()


def test_spawn_from_the_simple_tab_reach_the_server_and_stop_it(
    chromium, hub, screenshot
):
    page = chromium.new_page()
    try:
        page.goto(f"{hub.url}/hub/login")
        page.fill('input[name="username"]', "alice")
        page.fill('input[name="password"]', DUMMY_PASSWORD)
        page.click('#login_submit, input[type="submit"], button[type="submit"]')
        page.goto(f"{hub.url}/hub/spawn")
        # spawn.js, served by the hub, shows the Simple tab alone.
        page.wait_for_selector("#panel-simple", state="visible")
        assert not page.is_visible("#panel-advanced")
        page.click('button[data-tab="advanced"]')
        assert page.is_visible('#panel-advanced input[name="environment_path"]')
        # The Advanced tab's environments follow its partition: "broken" is
        # debug's only, and a choice that stops fitting moves to one that fits.
        environments = "#panel-advanced #field-environment_id"
        page.select_option("#panel-advanced #field-partition", "debug")
        page.select_option(environments, "broken")
        page.select_option("#panel-advanced #field-partition", "long")
        broken = f'{environments} option[value="broken"]'
        assert page.eval_on_selector(broken, "o => o.hidden && o.disabled")
        assert page.eval_on_selector(environments, "s => s.value") == "venv"
        page.select_option("#panel-advanced #field-partition", "debug")
        assert not page.eval_on_selector(broken, "o => o.hidden || o.disabled")
        page.click('button[data-tab="simple"]')
        page.check('#panel-simple input[name="partition"][value="debug"]')
        page.check('#panel-simple input[name="runtime"][value="1:00:00"]')
        page.check('#panel-simple input[name="environment_id"][value="venv"]')
        screenshot(page, "jupyterhub-spawn")
        page.click('#spawn_form [type="submit"]')
        # The hub's spawn-pending page sends the browser on to the server,
        # through the proxy, once it is ready.
        page.wait_for_url(f"{hub.url}/user/alice/**", timeout=SERVER_DEADLINE_MS)
        server = hub.server("alice")
        assert server is not None
        assert server["user_options"]["partition"] == "debug"
        assert server["user_options"]["environment_id"] == "venv"
        assert server["user_options"]["runtime"] == "1:00:00"
        # The browser landed on the server (past the hub's OAuth), and the
        # proxy routes /user/alice/ to jupyter-server.
        landed = page.url
        version = page.request.get(f"{hub.url}/user/alice/api")
        assert version.status == 200, (landed, version.text())
        assert "version" in version.json()
        page.goto(f"{hub.url}/hub/home")
        page.click("#stop", timeout=SERVER_DEADLINE_MS)
        wait_until(
            lambda: hub.server("alice") is None, SERVER_DEADLINE, message="stopped"
        )
    finally:
        page.close()
