"""The web console against a real runzeo, with state written through the
normal dispatch functions: every page and its JSON, filters and paging,
who may act (token, login cookie, proxy header) and CSRF, escaping, 4xx
for bad input, and /metrics parsed as Prometheus reads it."""

import time
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from prometheus_client.parser import text_string_to_metric_families

import zeo
from dispatch.state import admin, broker, model
from dispatch.state.database import dispatch_state
from dispatch.web.settings import WebSettings
from dispatch.web.tokens import new_token
from tests.dispatch.webconsole import Browser, ConsoleServer, csrf_of

GREET = {"1": {"service": "greeter", "queue": "greet"}, "start": [[1, {}]]}
COUNT = {
    "description": "Count <the> words",
    "1": {"service": "counter", "queue": "count"},
    "start": [[1, {}]],
}
EVIL_RUN = "<script>alert('run')</script>"
EVIL_REASON = "<img src=x onerror=alert('reason')>"
EVIL_TAIL = '<script>alert("tail")</script>'


def write_state(database):
    """Runs as the services leave them: run-00..run-06 of greet and
    count, run-01 failed (a dead letter), run-02 done with output, run-04
    cancelled, one with a hostile id; a running service instance."""
    with dispatch_state(database, write=True) as dispatch:
        for number in range(7):
            recipe, name = (COUNT, "count") if number % 2 else (GREET, "greet")
            guid = {"guid": f"run-{number:02d}"}
            broker.start_run(dispatch, recipe, guid, name=name)
        broker.start_run(dispatch, GREET, {"guid": EVIL_RUN})
    with dispatch_state(database, write=True) as dispatch:
        failed = broker.claim(dispatch, "count", "test")
        broker.dead_letter(dispatch, failed, EVIL_REASON)
        done = broker.claim(dispatch, "greet", "test")
        broker.finish(dispatch, done, exit_code=0, output_tail=f"hello\n{EVIL_TAIL}\n")
        admin.cancel_run(dispatch, dispatch.runs["run-04"])
        admin.register_instance(dispatch, "Greeter", "greet", pid=4242)
    assert (failed.run_id, done.run_id) == ("run-01", "run-00")
    return SimpleNamespace(dead_letter=failed.id, done="run-00", failed="run-01")


def run_status(database, run_id):
    with dispatch_state(database) as dispatch:
        return dispatch.runs[run_id].status


@pytest.fixture
def database(runzeo):
    database = zeo.DB(runzeo.address)
    yield database
    database.close()


def start_console(runzeo, database, tmp_path, **settings):
    values = {
        "token_file": str(tmp_path / "web.token"),
        "dlq_location": str(tmp_path / "DLQ"),
        "page_size": 3,
    }
    values.update(settings)
    return ConsoleServer(database, WebSettings(**values), runzeo.address)


@pytest.fixture
def console(runzeo, database, tmp_path):
    token = new_token(tmp_path / "web.token")
    state = write_state(database)
    server = start_console(runzeo, database, tmp_path)
    try:
        yield SimpleNamespace(
            browser=Browser(server.port),
            token=token,
            bearer={"Authorization": f"Bearer {token}"},
            state=state,
            database=database,
            tmp_path=tmp_path,
            port=server.port,
        )
    finally:
        server.stop()


# -- reading -------------------------------------------------------------------


def test_runs_come_newest_first_a_page_at_a_time(console):
    seen, page = [], 1
    while True:
        reply = console.browser.get(f"/api/runs?page={page}")
        assert reply.status == 200, reply
        data = reply.json()
        assert len(data["runs"]) <= 3
        seen += [row["run"] for row in data["runs"]]
        if not data["has_next"]:
            break
        page += 1
    assert seen == sorted(seen, reverse=True) and len(seen) == 8
    assert page == 3


def test_the_runs_page_shows_the_rows_its_json_gives(console):
    data = console.browser.get("/api/runs?size=8").json()
    page = console.browser.get("/runs?size=8")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    for row in data["runs"]:
        assert f'href="/runs/{quote(row["run"], safe="")}"' in page.text
    assert 'rel="next"' not in page.text
    assert 'rel="next"' in console.browser.get("/runs").text


def test_runs_are_filtered_by_state_and_service(console):
    def listed(query):
        reply = console.browser.get(f"/api/runs?size=50&{query}")
        assert reply.status == 200, reply
        return [row["run"] for row in reply.json()["runs"]]

    assert listed("state=failed") == ["run-01"]
    assert listed("state=succeeded") == ["run-00"]
    assert listed("state=cancelled") == ["run-04"]
    assert listed("service=counter") == ["run-05", "run-03", "run-01"]
    assert listed("service=count&state=running") == ["run-05", "run-03"]
    assert listed("service=nobody") == []
    assert listed("recipe=count") == ["run-05", "run-03", "run-01"]
    assert listed("recipe=count&state=failed") == ["run-01"]
    assert listed("recipe=count&age=1h") == ["run-05", "run-03", "run-01"]
    assert listed("age=1h&state=cancelled") == ["run-04"]
    assert listed(f"since={time.time() + 3600:.0f}") == []
    assert console.browser.get("/api/runs?state=failed").json()["total"] == 1
    page = console.browser.get("/runs?state=failed")
    assert "run-01" in page.text and "run-03" not in page.text
    assert '<option value="failed" selected>' in page.text


def test_a_run_page_has_steps_attempts_exit_code_and_output(console):
    reply = console.browser.get("/api/runs/run-00")
    assert reply.status == 200, reply
    run = reply.json()["run"]
    assert (run["name"], run["status"]) == ("greet", model.SUCCEEDED)
    (step,) = run["steps"]
    (message,) = step["messages"]
    (attempt,) = message["attempts"]
    assert (attempt["outcome"], attempt["exit_code"]) == ("done", 0)
    assert attempt["tail"] == ["hello", EVIL_TAIL]
    page = console.browser.get("/runs/run-00")
    assert page.status == 200
    assert "hello" in page.text and "succeeded" in page.text
    assert 'Recipe <span class="recipe">greet</span>' in page.text


def test_dead_letters_services_and_zeo_pages(console):
    letters = console.browser.get("/api/dead-letters").json()
    assert letters["total"] == 1 and letters["counts"] == {"count": 1}
    (letter,) = letters["dead_letters"]
    assert (letter["id"], letter["run"]) == (console.state.dead_letter, "run-01")
    shown = console.browser.get(f"/api/dead-letters/{letter['id']}").json()
    assert shown["document"]["header"]["message-id"] == letter["id"]
    assert shown["document"]["message"]["recipe-pointer"] == 1
    assert console.browser.get(f"/dead-letters/{letter['id']}").status == 200
    assert letter["id"] in console.browser.get("/dead-letters").text

    (instance,) = console.browser.get("/api/services").json()["instances"]
    assert (instance["service"], instance["pid"]) == ("Greeter", 4242)
    assert "4242" in console.browser.get("/services").text

    storages = console.browser.get("/api/zeo").json()["storages"]
    assert storages["1"]["connections"] >= 1
    assert "invalidation-queue-length" in console.browser.get("/zeo").text


def test_metrics_parse_as_prometheus_text(console):
    reply = console.browser.get("/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
    }
    assert samples[("dispatch_runs", (("state", "failed"),))] == 1
    assert samples[("dispatch_runs", (("state", "running"),))] == 5
    assert samples[("dispatch_dead_letters", (("queue", "count"),))] == 1
    assert samples[("dispatch_queue_pending", (("queue", "count"),))] == 2
    assert samples[("dispatch_service_instances", (("service", "Greeter"),))] == 1
    assert samples[("zeo_up", ())] == 1
    assert samples[("zeo_connections", (("storage", "1"),))] >= 1


def scrape(console):
    reply = console.browser.get("/metrics")
    assert reply.status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
    }


def test_metrics_follow_real_transitions(console):
    def runs(state):
        return samples[("dispatch_runs", (("state", state),))]

    def moved(before, after):
        key = (("from", before), ("to", after))
        return samples.get(("dispatch_run_transitions_total", key), 0)

    samples = scrape(console)
    assert moved("new", "running") == 8 and moved("running", "failed") == 1
    before = (runs("running"), runs("cancelled"), moved("running", "cancelled"))
    assert samples[("dispatch_dead_letters_total_held", ())] == 1
    accepted = console.browser.post("/api/runs/run-03/cancel", headers=console.bearer)
    assert accepted.status == 200, accepted
    retried = console.browser.post("/api/runs/run-01/retry", headers=console.bearer)
    assert retried.status == 200, retried
    samples = scrape(console)
    assert (runs("running"), runs("cancelled"), moved("running", "cancelled")) == (
        before[0] - 1 + 1,  # run-03 cancelled, run-01 running again
        before[1] + 1,
        before[2] + 1,
    )
    assert moved("failed", "running") == 1 and runs("failed") == 0
    assert samples[("dispatch_dead_letters_total_held", ())] == 0
    assert samples[("dispatch_queue_pending", (("queue", "count"),))] == 2


def test_pages_come_with_security_headers_and_static_files(console):
    page = console.browser.get("/runs")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    script = console.browser.get("/static/console.js")
    assert script.status == 200 and "addEventListener" in script.text
    assert console.browser.get("/").status == 303


# -- escaping ------------------------------------------------------------------


def test_every_field_is_escaped(console):
    listing = console.browser.get("/runs?size=50")
    assert EVIL_RUN not in listing.text
    assert "&lt;script&gt;alert(&#39;run&#39;)&lt;/script&gt;" in listing.text
    run_page = console.browser.get("/runs/" + quote(EVIL_RUN, safe=""))
    assert run_page.status == 200, run_page
    assert EVIL_RUN not in run_page.text and "&lt;script&gt;" in run_page.text
    output = console.browser.get("/runs/run-00")
    assert EVIL_TAIL not in output.text
    assert "&lt;script&gt;alert(&#34;tail&#34;)&lt;/script&gt;" in output.text
    for path in (
        "/runs/run-01",
        "/dead-letters",
        f"/dead-letters/{console.state.dead_letter}",
    ):
        page = console.browser.get(path)
        assert page.status == 200, page
        assert EVIL_REASON not in page.text and "&lt;img src=x" in page.text
    echoed = console.browser.get("/runs?recipe=" + quote('"><script>x()</script>'))
    assert echoed.status == 200 and "<script>x()" not in echoed.text
    assert 'value="&#34;&gt;&lt;script&gt;x()&lt;/script&gt;"' in echoed.text
    missing = console.browser.get("/runs/" + quote("<b>nothing</b>", safe=""))
    assert missing.status == 404 and "<b>nothing" not in missing.text


# -- bad input -----------------------------------------------------------------


@pytest.mark.parametrize(
    "path, status, words",
    [
        ("/api/runs?page=0", 400, "page must be between 1"),
        ("/api/runs?page=two", 400, "page must be a whole number"),
        ("/api/runs?page=-1", 400, "page must be a whole number"),
        ("/api/runs?size=100000", 400, "size must be between 1 and 500"),
        ("/api/runs?state=sleeping", 400, "state must be one of"),
        ("/api/runs?age=soon", 400, "for example 90s"),
        ("/api/runs?age=-1h", 400, "not a positive number"),
        ("/api/runs?since=yesterday", 400, "since must be a time"),
        ("/api/runs?since=1&age=1h", 400, "age or since, not both"),
        ("/api/dead-letters?page=x", 400, "page must be a whole number"),
        ("/api/runs/no-such-run", 404, "no run 'no-such-run'"),
        ("/api/dead-letters/no-such-letter", 404, "no dead letter"),
        ("/api/nothing-here", 404, "Not Found"),
    ],
)
def test_bad_input_is_a_4xx_with_a_clear_message(console, path, status, words):
    reply = console.browser.get(path)
    assert reply.status == status, reply
    assert words in reply.json()["error"]
    page = console.browser.get(path.replace("/api/", "/", 1))
    assert page.status == status
    assert page.headers["Content-Type"].startswith("text/html")


def test_a_bad_step_to_retry_is_a_400(console):
    reply = console.browser.post(
        "/api/runs/run-01/retry", {"step": "one"}, headers=console.bearer
    )
    assert reply.status == 400 and "step must be a step number" in reply.json()["error"]
    gone = console.browser.post("/api/runs/no-such-run/cancel", headers=console.bearer)
    assert gone.status == 404


# -- acting: who may ------------------------------------------------------------


def test_acting_needs_the_token(console):
    refused = console.browser.post("/api/runs/run-03/cancel")
    assert refused.status == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = console.browser.post(
        "/api/runs/run-03/cancel", headers={"Authorization": "Bearer not-the-token"}
    )
    assert wrong.status == 401
    assert run_status(console.database, "run-03") == model.RUNNING
    accepted = console.browser.post("/api/runs/run-03/cancel", headers=console.bearer)
    assert accepted.status == 200, accepted
    assert accepted.json() == {"run": "run-03", "withdrawn": 1, "already": False}
    assert run_status(console.database, "run-03") == model.CANCELLED


def test_a_login_cookie_acts_with_the_forms_csrf_token(console):
    browser = console.browser
    login_page = browser.get("/login")
    wrong = browser.post("/login", {"csrf": csrf_of(login_page), "token": "guess"})
    assert wrong.status == 401 and "wrong token" in wrong.text
    no_csrf = browser.post("/login", {"token": console.token})
    assert no_csrf.status == 403
    logged = browser.post(
        "/login", {"csrf": csrf_of(login_page), "token": console.token}
    )
    assert logged.status == 303 and "dispatch_session" in browser.cookies
    assert console.token not in browser.cookies["dispatch_session"]

    run_page = browser.get("/runs/run-05")
    assert "signed in" in run_page.text
    assert browser.post("/runs/run-05/cancel").status == 403
    forged = browser.post("/runs/run-05/cancel", {"csrf": "made-up-elsewhere"})
    assert forged.status == 403 and "CSRF" in forged.text
    assert run_status(console.database, "run-05") == model.RUNNING
    cancelled = browser.post("/runs/run-05/cancel", {"csrf": csrf_of(run_page)})
    assert cancelled.status == 303
    assert cancelled.headers["Location"] == "/runs/run-05"
    assert run_status(console.database, "run-05") == model.CANCELLED

    out = browser.post("/logout", {"csrf": csrf_of(run_page)})
    assert out.status == 303 and "dispatch_session" not in browser.cookies
    again = browser.post("/runs/run-03/cancel", {"csrf": csrf_of(run_page)})
    assert again.status == 401


def test_a_proxy_user_header_acts_only_when_configured(runzeo, database, tmp_path):
    write_state(database)
    server = start_console(runzeo, database, tmp_path, user_header="X-Remote-User")
    try:
        browser = Browser(server.port)
        page = browser.get("/runs/run-03")
        user = {"X-Remote-User": "alice"}
        assert (
            browser.post("/runs/run-03/cancel", {"csrf": csrf_of(page)}).status == 401
        )
        assert browser.post("/runs/run-03/cancel", headers=user).status == 403
        done = browser.post(
            "/runs/run-03/cancel", {"csrf": csrf_of(page)}, headers=user
        )
        assert done.status == 303
        assert run_status(database, "run-03") == model.CANCELLED
    finally:
        server.stop()
    plain = start_console(runzeo, database, tmp_path / "plain")
    try:
        browser = Browser(plain.port)
        page = browser.get("/runs/run-05")
        refused = browser.post(
            "/runs/run-05/cancel",
            {"csrf": csrf_of(page)},
            headers={"X-Remote-User": "eve"},
        )
        assert refused.status == 401 and "no login is set up" in refused.text
    finally:
        plain.stop()


def test_a_token_file_others_may_read_is_refused(runzeo, database, tmp_path):
    from dispatch.web.tokens import TokenFileError

    path = tmp_path / "web.token"
    new_token(path)
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(0o644)
    with pytest.raises(TokenFileError, match="chmod 600"):
        start_console(runzeo, database, tmp_path)


# -- acting: what it does -------------------------------------------------------


def test_retry_sends_a_failed_runs_dead_letters_again(console):
    reply = console.browser.post("/api/runs/run-01/retry", headers=console.bearer)
    assert reply.status == 200, reply
    (sent,) = reply.json()["sent"]
    assert run_status(console.database, "run-01") == model.RUNNING
    with dispatch_state(console.database) as dispatch:
        assert dispatch.runs["run-01"].messages[sent].state == model.PENDING
        assert console.state.dead_letter not in dispatch.dead_letters


def test_a_dead_letter_is_reinjected(console):
    letter = console.state.dead_letter
    refused = console.browser.post(f"/api/dead-letters/{letter}/reinject")
    assert refused.status == 401
    reply = console.browser.post(
        f"/api/dead-letters/{letter}/reinject", headers=console.bearer
    )
    assert reply.status == 200, reply
    new_id = reply.json()["message"]
    with dispatch_state(console.database) as dispatch:
        run = dispatch.runs["run-01"]
        assert run.messages[new_id].state == model.PENDING
        assert run.messages[letter].reinjected_as == new_id
        assert letter not in dispatch.dead_letters
    again = console.browser.post(
        f"/api/dead-letters/{letter}/reinject", headers=console.bearer
    )
    assert again.status == 404


def test_dead_letters_are_purged_to_the_configured_place_only(console):
    missing = console.browser.post(
        "/api/dead-letters/purge",
        {"message": "../../etc/passwd"},
        headers=console.bearer,
    )
    assert missing.status == 404
    assert console.browser.post("/api/dead-letters/purge").status == 401
    reply = console.browser.post(
        "/api/dead-letters/purge", {"queue": "count"}, headers=console.bearer
    )
    assert reply.status == 200, reply
    (written,) = reply.json()["written"]
    location = console.tmp_path / "DLQ"
    assert written.startswith(str(location))
    assert console.state.dead_letter in written
    assert console.browser.get("/api/dead-letters").json()["total"] == 0


# -- live updates ----------------------------------------------------------------


def test_a_commit_is_an_event_on_the_stream(console):
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", console.port, timeout=60)
    try:
        connection.request("GET", "/api/events")
        stream = connection.getresponse()
        assert stream.status == 200
        assert stream.headers["Content-Type"] == "text/event-stream"
        # The hub has this stream from the first event on.
        assert stream.readline() == b"event: ready\n"
        assert stream.readline().startswith(b"data:")
        assert stream.readline() == b"\n"
        with dispatch_state(console.database, write=True) as dispatch:
            broker.start_run(dispatch, GREET, {"guid": "run-live"})
        lines = [stream.readline() for _ in range(2)]
        assert lines[0] == b"event: commit\n"
        assert lines[1].startswith(b'data: {"tid": "')
    finally:
        connection.close()
    page = console.browser.get("/runs")
    assert 'data-live="runs"' in page.text
    assert "EventSource" in console.browser.get("/static/console.js").text


def test_with_zeo_down_metrics_say_so_and_pages_are_503(console, runzeo):
    runzeo.stop()
    reply = console.browser.get("/metrics")
    assert reply.status == 200
    families = {f.name: f for f in text_string_to_metric_families(reply.text)}
    assert families["zeo_up"].samples[0].value == 0
    assert "dispatch_runs" not in families
    down = console.browser.get("/api/zeo")
    assert down.status == 503 and "does not answer" in down.json()["error"]


def test_static_files_stay_in_their_folder(console):
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py"):
        reply = console.browser.get(path)
        assert reply.status in (403, 404), (path, reply)
        assert "create_app" not in reply.text


def test_the_dead_letter_forms_work_for_a_logged_in_browser(console):
    browser = console.browser
    login_page = browser.get("/login")
    browser.post("/login", {"csrf": csrf_of(login_page), "token": console.token})
    letter = console.state.dead_letter
    page = browser.get(f"/dead-letters/{letter}")
    assert f'action="/dead-letters/{letter}/reinject"' in page.text
    sent = browser.post(
        f"/dead-letters/{letter}/reinject", {"csrf": csrf_of(page), "destination": ""}
    )
    assert sent.status == 303 and sent.headers["Location"] == "/runs/run-01"
    assert run_status(console.database, "run-01") == model.RUNNING
    with dispatch_state(console.database, write=True) as dispatch:
        again = broker.claim(dispatch, "count", "test")
        broker.dead_letter(dispatch, again, "still broken")
    listing = browser.get("/dead-letters")
    purged = browser.post(
        "/dead-letters/purge", {"csrf": csrf_of(listing), "queue": "count"}
    )
    assert purged.status == 303 and purged.headers["Location"] == "/dead-letters"
    assert list((console.tmp_path / "DLQ").rglob("msg-*"))
    assert browser.get("/api/dead-letters").json()["total"] == 0
