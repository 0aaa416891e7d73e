"""The console in a real browser (Debian's chromium through Playwright):
log in, spawn from the Simple tab and watch the Slurm job finish on /jobs,
a field error shown beside its field, hostile text rendered as text (the
page's scripts do not run it), cancel a job from its page."""

import pytest

from dispatch.state import broker
from dispatch.state.database import dispatch_state
from tests.browser.consolepage import log_in
from tests.dispatch import spawnconsole
from tests.dispatch.conftest import RunzeoProcess

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
# Milliseconds Playwright waits for a job to reach a state on the page.
JOB_DEADLINE_MS = 90_000
EVIL = "<script>window.hacked=1</script>"


@pytest.fixture
def console(chromium, tmp_path):
    spawnconsole.require_slurm()
    server = RunzeoProcess(tmp_path)
    try:
        started = spawnconsole.start(server, tmp_path)
        try:
            started.url = f"http://127.0.0.1:{started.port}"
            yield started
        finally:
            started.stop()
    finally:
        server.stop()


@pytest.fixture
def page(chromium, console):
    page = chromium.new_page()
    log_in(page, console.url, console.token)
    try:
        yield page
    finally:
        page.close()


def test_spawn_from_the_simple_tab_and_see_the_job_finish(console, page, screenshot):
    page.goto(f"{console.url}/spawn")
    assert page.is_visible("#panel-simple") and not page.is_visible("#panel-advanced")
    # debug allows 2 hours: the 3 h button is hidden, shown again for long.
    three_hours = page.locator('#panel-simple input[name="runtime"][value="3:00:00"]')
    assert not three_hours.is_visible()
    page.check('#panel-simple input[name="partition"][value="long"]')
    assert three_hours.is_visible()
    page.check('#panel-simple input[name="partition"][value="debug"]')
    page.check('#panel-simple input[name="runtime"][value="1:00:00"]')
    page.fill("#field-command", "/bin/echo hello from the simple tab")
    screenshot(page, "spawn")
    page.click("#spawn-submit")
    page.wait_for_url(f"{console.url}/jobs/spawn.*")
    page.locator("#job-state", has_text="COMPLETED").wait_for(timeout=JOB_DEADLINE_MS)
    assert page.inner_text("#job-exit-code") == "0"
    assert "hello from the simple tab" in page.inner_text("#job-output")
    screenshot(page, "job")
    page.goto(f"{console.url}/jobs")
    row = page.locator("tr[data-job^='spawn.']")
    assert row.locator(".state").inner_text() == "COMPLETED"
    screenshot(page, "jobs")


def test_an_over_limit_request_is_shown_beside_its_field(console, page, screenshot):
    page.goto(f"{console.url}/spawn")
    page.click("button[data-tab='advanced']")
    assert page.is_visible("#panel-advanced") and not page.is_visible("#panel-simple")
    page.select_option("#field-partition", "long")
    page.fill("#field-nprocs", "500")
    page.fill("#field-command", "hostname")
    page.click("#spawn-submit")
    error = page.locator("#error-nprocs")
    assert error.inner_text().startswith("nprocs 500 exceeds max-nprocs")
    # Beside its field: in the same row of the form as the nprocs input.
    assert (
        page.locator(".field", has=page.locator("#field-nprocs"))
        .locator("#error-nprocs")
        .count()
        == 1
    )
    assert page.is_visible("#panel-advanced")  # the tab stays as it was
    screenshot(page, "spawn-field-error")


def test_hostile_text_renders_as_text(console, page):
    with dispatch_state(console.database, write=True) as dispatch:
        broker.start_run(
            dispatch,
            {"1": {"service": "x", "queue": "q"}, "start": [[1, {}]]},
            {"guid": EVIL},
        )
    page.goto(f"{console.url}/runs")
    assert page.get_by_text(EVIL).count() >= 1
    assert page.evaluate("window.hacked") is None
    page.goto(f"{console.url}/spawn?command={EVIL}")
    assert page.input_value("#field-command") == EVIL
    assert page.evaluate("window.hacked") is None


def test_cancel_a_job_from_its_page(console, page, screenshot):
    page.goto(f"{console.url}/spawn")
    page.click("button[data-tab='advanced']")
    page.select_option("#field-partition", "debug")
    page.fill("#field-runtime", "5:00")
    page.fill("#field-command", "/bin/sleep 300")
    page.click("#spawn-submit")
    page.wait_for_url(f"{console.url}/jobs/spawn.*")
    page.locator("#job-state", has_text="RUNNING").wait_for(timeout=JOB_DEADLINE_MS)
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("#cancel")
    page.locator("#job-state", has_text="CANCELLED").wait_for(timeout=JOB_DEADLINE_MS)
    assert not page.is_visible("#cancel")
