"""The console's runs, dead letters, services and zeo pages in a real
browser (Debian's chromium through Playwright), with real runzeo, a real
papa kernel on the real Slurm cluster and ``dispatch supervise`` running a
CommandRunner: a URL spawn of a recipe confirmed and followed to its run's
end, cancel from a run page (its step a Slurm job), a dead letter
reinjected from the dead-letters page, and forms posted from a page of
another origin, or without the CSRF token, refused.  One console for the
module (``--screenshots`` saves each page as docs/web/NAME.png)."""

import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from dispatch.state import broker
from dispatch.state.database import dispatch_state
from tests.browser.consolepage import log_in
from tests.dispatch import spawnconsole
from tests.dispatch.conftest import RunzeoProcess
from tests.dispatch.test_run_cli import TIMEOUT
from tests.dispatch.test_supervise import start_supervise, write_configuration
from tests.papa.test_slurm_cluster import squeue_state
from tests.support.polling import wait_until

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
# Milliseconds Playwright waits for a run or job to reach a state on the page.
DEADLINE_MS = 90_000
# Two deliveries, 0.2 s apart (tests.dispatch.test_slurm_step:QuickRunner):
# a failing step is a dead letter in seconds.
SERVICES = (
    "<service commandrunner>\n"
    "  service tests.dispatch.test_slurm_step:QuickRunner\n"
    "  instances 1\n</service>\n"
)
LONG_SLURM_STEP = {
    "1": {
        "command": ["/bin/sleep", "300"],
        "slurm": {"partition": "debug", "runtime": "5:00"},
    },
    "start": [[1, {}]],
}
# A step no service consumes: its run stays running.
UNCONSUMED = {"1": {"service": "nobody", "queue": "nobody"}, "start": [[1, {}]]}


@pytest.fixture(scope="module")
def console(chromium, tmp_path_factory):
    spawnconsole.require_slurm()
    tmp_path = tmp_path_factory.mktemp("console-runs")
    server = RunzeoProcess(tmp_path)
    try:
        started = spawnconsole.start(server, tmp_path)
        try:
            configuration = write_configuration(
                tmp_path, server, started.kernel.port_or_path, SERVICES
            )
            supervise = start_supervise(server, configuration)
            try:
                started.url = f"http://127.0.0.1:{started.port}"
                started.tmp_path = tmp_path
                yield started
            finally:
                supervise.send_signal(signal.SIGTERM)
                supervise.communicate(timeout=TIMEOUT)
        finally:
            started.stop()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def page(chromium, console):
    page = chromium.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, console.url, console.token)
    try:
        yield page
    finally:
        page.close()


def start_run(console, recipe):
    with dispatch_state(console.database, write=True) as dispatch:
        return broker.start_run(dispatch, recipe, {}).id


def run_status(console, run_id):
    with dispatch_state(console.database) as dispatch:
        return dispatch.runs[run_id].status


def run_state(page, state):
    """Wait until the run page says the run is *state* (live: no reload)."""
    page.locator("[data-live='run'] strong", has_text=state).wait_for(
        timeout=DEADLINE_MS
    )


def test_a_url_spawn_is_confirmed_and_its_run_page_shows_it(console, page, screenshot):
    page.goto(f"{console.url}/spawn?partition=debug&nprocs=1&recipe=one-job&x=1")
    assert page.is_visible("#confirm")
    with page.expect_response(
        lambda reply: reply.request.method == "POST" and reply.url.endswith("/spawn")
    ) as posted:
        page.click("#spawn-submit")
    assert posted.value.status == 303
    page.wait_for_url(f"{console.url}/runs/*")
    run_id = page.url.rsplit("/", 1)[1]
    assert page.inner_text("h1 .id") == run_id
    # The supervised runner runs its step as a Slurm job; the page follows.
    run_state(page, "succeeded")
    assert "Slurm job" in page.inner_text("#step-1 .attempts")
    screenshot(page, "run")
    page.goto(f"{console.url}/runs")
    assert page.locator(f"a[href='/runs/{run_id}']").count() == 1
    screenshot(page, "runs")


def test_cancel_from_a_run_page_cancels_its_slurm_job(console, page):
    run_id = start_run(console, LONG_SLURM_STEP)
    page.goto(f"{console.url}/runs/{run_id}")
    attempt = page.locator("#step-1 .attempts td", has_text="Slurm job")
    attempt.wait_for(timeout=DEADLINE_MS)
    job = int(attempt.inner_text().split()[2])
    wait_until(
        lambda: squeue_state(job) == "RUNNING", timeout=TIMEOUT, message="the job"
    )
    page.click("form[action$='/cancel'] button")
    run_state(page, "cancelled")
    assert page.is_disabled("form[action$='/cancel'] button")
    wait_until(
        lambda: squeue_state(job) == "CANCELLED",
        timeout=TIMEOUT,
        message="scancel of the run's job",
    )


def test_a_dead_letter_is_reinjected_from_its_page(console, page, screenshot):
    ready = console.tmp_path / "ready"
    recipe = {
        "1": {"command": ["/bin/sh", "-c", f"test -e {ready}"]},
        "start": [[1, {}]],
    }
    run_id = start_run(console, recipe)
    page.goto(f"{console.url}/dead-letters")
    row = page.locator("tr", has=page.locator(f"a[href='/runs/{run_id}']"))
    row.wait_for(timeout=DEADLINE_MS)  # live: the list follows the commits
    assert row.locator("td").nth(4).inner_text() == "2"  # deliveries
    screenshot(page, "dead-letters")
    row.locator("td a").first.click()
    page.wait_for_url(f"{console.url}/dead-letters/*")
    ready.touch()  # the step succeeds from now on
    page.click("form[action$='/reinject'] button")
    page.wait_for_url(f"{console.url}/runs/{run_id}")
    run_state(page, "succeeded")
    assert run_status(console, run_id) == "succeeded"
    page.goto(f"{console.url}/dead-letters")
    assert page.locator(f"a[href='/runs/{run_id}']").count() == 0


class Elsewhere(BaseHTTPRequestHandler):
    """A page of another origin whose form posts to the console at once."""

    target = ""

    def do_GET(self):  # noqa: N802 (http.server's name)
        body = (
            f'<form id="f" method="post" action="{self.target}">'
            '<input name="csrf" value="forged"></form>'
            "<script>document.getElementById('f').submit()</script>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *arguments):
        pass


@pytest.fixture
def elsewhere():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(
            server=server, url=f"http://127.0.0.1:{server.server_port}"
        )
    finally:
        server.shutdown()
        server.server_close()


# A post of the console's own page with its login cookie but no CSRF token.
POST_WITHOUT_TOKEN = """
async (path) => {
    const reply = await fetch(path, {method: "POST", body: new URLSearchParams()});
    return [reply.status, (await reply.json()).error];
}
"""


def test_forms_from_elsewhere_or_without_the_csrf_token_are_refused(
    console, page, elsewhere
):
    run_id = start_run(console, UNCONSUMED)
    Elsewhere.target = f"{console.url}/runs/{run_id}/cancel"
    # Another origin (another port: the same site, so the login cookie goes
    # with the post; the CSRF token is what refuses it).
    with page.expect_response(lambda reply: reply.request.method == "POST") as posted:
        page.goto(elsewhere.url)
    assert posted.value.status == 403
    assert "CSRF token is missing or stale" in page.inner_text("main")
    assert run_status(console, run_id) == "running"
    page.goto(f"{console.url}/runs/{run_id}")
    status, error = page.evaluate(POST_WITHOUT_TOKEN, f"/api/runs/{run_id}/cancel")
    assert status == 403 and "CSRF token is missing" in error
    assert run_status(console, run_id) == "running"


def test_services_and_zeo_pages(console, page, screenshot):
    page.goto(f"{console.url}/services")
    row = page.locator("table.services tbody tr", has_text="QuickRunner")
    row.wait_for(timeout=DEADLINE_MS)
    assert row.locator("td").nth(1).inner_text() == "dispatch.commands"
    screenshot(page, "services")
    page.goto(f"{console.url}/zeo")
    assert "zeo at" in page.inner_text("h1")
    screenshot(page, "zeo")


def test_a_stopped_service_is_started_again_from_its_page(console, page):
    page.goto(f"{console.url}/services")
    instances = page.locator("table.services td.id")
    instances.first.wait_for(timeout=DEADLINE_MS)
    (first,) = instances.all_inner_texts()
    page.click("table.services button")  # Stop (its confirm is accepted)
    start = page.locator("tr[data-service='commandrunner'] button", has_text="Start")
    start.wait_for(timeout=DEADLINE_MS)  # live: the supervisor's record changed
    assert page.inner_text("tr[data-service='commandrunner'] .stopped") == "1"
    start.click()
    (again,) = wait_until(
        lambda: [i for i in instances.all_inner_texts() if i != first],
        timeout=TIMEOUT,
        message="the supervisor to start the instance again",
    )
    assert again != first
    page.locator("tr[data-service='commandrunner'] .stopped", has_text="0").wait_for(
        timeout=DEADLINE_MS
    )
