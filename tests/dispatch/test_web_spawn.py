"""The spawn and jobs pages against a real runzeo, a real papa kernel and
the real one-node Slurm cluster: the partition table and the simple tab's
choices, field errors from the kernel's own check, URL spawns (bearer at
once, a browser's link confirmed), a recipe spawn, a job's page and its
cancel button, escaping of what a job is called."""

from urllib.parse import quote, urlencode

import pytest

from dispatch.state.database import dispatch_state
from tests.dispatch import spawnconsole
from tests.dispatch.spawnconsole import field_error, logged_in
from tests.support.polling import wait_until

pytestmark = pytest.mark.slurm
JOB_DEADLINE = 90


@pytest.fixture
def spawn(runzeo, tmp_path):
    spawnconsole.require_slurm()
    console = spawnconsole.start(runzeo, tmp_path)
    try:
        yield console
    finally:
        console.stop()


def job_of(console, name):
    reply = console.browser.get(f"/api/jobs/{quote(name, safe='')}")
    assert reply.status == 200, reply
    return reply.json()["job"]


def test_the_page_shows_partitions_and_choices_that_fit_them(spawn):
    data = spawn.browser.get("/api/spawn").json()
    assert {"debug", "long"} <= set(data["partitions"])
    debug = data["partitions"]["debug"]
    assert debug["nodes_total"] >= 1 and debug["cpus_total"] >= 1
    runtimes = {c["value"]: c["partitions"] for c in data["choices"]["runtimes"]}
    # debug's limit is 2 hours: 3 h and more are offered for long only.
    assert "debug" in runtimes["2:00:00"] and "debug" not in runtimes["3:00:00"]
    assert "long" in runtimes["12:00:00"]
    assert data["recipes"] == ["one-job"]
    page = spawn.browser.get("/spawn")
    assert page.status == 200 and 'id="panel-simple"' in page.text
    assert 'id="panel-advanced"' in page.text and "/static/spawn.js" in page.text


def test_spawning_needs_a_login_and_the_csrf_token(spawn):
    refused = spawn.browser.post("/spawn", {"command": "hostname"})
    assert refused.status == 401
    logged_in(spawn.browser, spawn.token)
    stale = spawn.browser.post("/spawn", {"command": "hostname", "csrf": "x" * 40})
    assert stale.status == 403
    assert spawn.browser.get("/api/jobs").json()["jobs"] == []


def test_an_over_limit_request_is_shown_beside_its_field(spawn):
    csrf = logged_in(spawn.browser, spawn.token)
    form = {"csrf": csrf, "tab": "advanced", "command": "hostname"}
    page = spawn.browser.post("/spawn", {**form, "partition": "long", "nprocs": "500"})
    assert page.status == 400, page
    assert field_error(page, "nprocs").startswith("nprocs 500 exceeds max-nprocs")
    assert 'value="500"' in page.text  # the form keeps what was typed
    page = spawn.browser.post("/spawn", {**form, "runtime": "3:00:00"})
    assert "exceeds max-runtime 02:00:00" in field_error(page, "runtime")
    page = spawn.browser.post("/spawn", {**form, "memory": "lots"})
    assert "is not like 500M" in field_error(page, "memory")
    page = spawn.browser.post("/spawn", {**form, "partition": "debug\n#SBATCH -x"})
    assert field_error(page, "partition") == "partition must not contain a newline"
    api = spawn.browser.post("/api/spawn", {**form, "ngpus": "1"})
    assert api.status == 400 and "has no GPUs" in api.json()["fields"]["ngpus"]
    assert spawn.browser.get("/api/jobs").json()["jobs"] == []


def test_a_url_spawn_with_the_token_submits_and_the_job_ends(spawn):
    query = urlencode(
        [
            ("partition", "debug"),
            ("nprocs", "1"),
            ("runtime", "5:00"),
            ("command", "/bin/echo <script>x</script>"),
            ("command", "ignored"),
            ("colour", "red"),
        ]
    )
    reply = spawn.browser.get(f"/spawn?{query}", headers=spawn.bearer)
    assert reply.status == 303, reply
    location = reply.headers["Location"]
    assert location.startswith("/jobs/spawn.")
    name = location.removeprefix("/jobs/")
    wait_until(
        lambda: job_of(spawn, name)["state"] == "COMPLETED",
        timeout=JOB_DEADLINE,
        message="the spawned job to complete",
    )
    job = job_of(spawn, name)
    assert job["exit_code"] == 0 and job["slurm_job"] > 0
    listing = spawn.browser.get("/jobs")
    assert name in listing.text and "<script>x" not in listing.text
    page = spawn.browser.get(location)
    assert "&lt;script&gt;x" in page.text and "<script>x" not in page.text
    # The output tail, left in the kernel: a second look sees it again.
    output = '<pre class="tail" id="job-output">&lt;script&gt;x&lt;/script&gt;\n'
    assert output in page.text
    assert output in spawn.browser.get(location).text


def test_a_url_spawn_from_a_browser_asks_to_confirm(spawn):
    logged_in(spawn.browser, spawn.token)
    page = spawn.browser.get("/spawn?partition=debug&nprocs=1&command=hostname")
    assert page.status == 200 and 'id="confirm"' in page.text
    assert 'value="hostname"' in page.text
    assert spawn.browser.get("/api/jobs").json()["jobs"] == []
    bad = spawn.browser.get("/spawn?command=hostname&nprocs=1%0A2")
    assert bad.status == 400
    assert field_error(bad, "nprocs") == "nprocs must not contain a newline"


def test_a_recipe_spawn_starts_a_run_with_the_chosen_resources(spawn):
    csrf = logged_in(spawn.browser, spawn.token)
    reply = spawn.browser.post(
        "/spawn",
        {"csrf": csrf, "recipe": "one-job", "partition": "debug", "nprocs": "1"},
    )
    assert reply.status == 303, reply
    run_id = reply.headers["Location"].removeprefix("/runs/")
    with dispatch_state(spawn.database) as dispatch:
        run = dispatch.runs[run_id]
        assert run.name == "one-job"
        recipe = run.recipe
        step = recipe.get(1) or recipe.get("1")
    assert step["slurm"] == {"runtime": "1", "partition": "debug", "nprocs": "1"}
    missing = spawn.browser.post("/spawn", {"csrf": csrf, "recipe": "../etc/passwd"})
    assert missing.status == 400
    assert "no recipe '../etc/passwd'; known: one-job" in field_error(missing, "recipe")


def test_cancel_a_running_job(spawn):
    reply = spawn.browser.post(
        "/api/spawn",
        {"partition": "debug", "runtime": "5:00", "command": "/bin/sleep 300"},
        headers=spawn.bearer,
    )
    assert reply.status == 200, reply
    name = reply.json()["job"]
    wait_until(
        lambda: job_of(spawn, name)["state"] in ("PENDING", "RUNNING"),
        timeout=JOB_DEADLINE,
        message="the job to be queued",
    )
    refused = spawn.browser.post(f"/jobs/{name}/cancel")
    assert refused.status == 401
    done = spawn.browser.post(f"/api/jobs/{name}/cancel", headers=spawn.bearer)
    assert done.status == 200, done
    assert job_of(spawn, name)["state"] == "CANCELLED"
    assert spawn.browser.get("/api/jobs/nosuch").status == 404
