"""The services page's stop and start buttons against a real runzeo: stop
asks what ``dispatch shutdown ID`` asks (the instance's record says stop);
start, with a real ``dispatch supervise`` and papa kernel, writes a start
request the supervisor sees through zeo and acts on.  Both need a login
and, from a browser, the CSRF token; unknown names are 404s."""

from dispatch.state import admin, supervisors
from dispatch.state.database import dispatch_state
from dispatch.web.tokens import new_token
from tests.dispatch.test_adopt import supervised
from tests.dispatch.test_commandrunner import papa_kernel  # noqa: F401 (fixture)
from tests.dispatch.test_run_cli import TIMEOUT
from tests.dispatch.test_web import (  # noqa: F401 (fixtures)
    console,
    database,
    start_console,
)
from tests.dispatch.webconsole import Browser, csrf_of
from tests.support.polling import wait_until


def stop_requested(db, instance_id):
    with dispatch_state(db) as dispatch:
        return admin.instances_of(dispatch)[instance_id].stop_requested


def test_the_stop_button_asks_the_instance_to_stop(console):  # noqa: F811
    browser = console.browser
    (instance,) = browser.get("/api/services").json()["instances"]
    # As dispatch status shows it: claims held, last heartbeat, state.
    assert instance["state"] == "running" and instance["claims"] == 0
    assert instance["heartbeat"] >= instance["started"]
    path = f"/services/{instance['id']}/stop"
    page = browser.get("/services")
    assert f'action="{path}"' in page.text
    assert '<td class="state">running</td>' in page.text
    assert browser.post(path, {"csrf": csrf_of(page)}).status == 401
    assert stop_requested(console.database, instance["id"]) is None
    login = browser.get("/login")
    browser.post("/login", {"token": console.token, "csrf": csrf_of(login)})
    assert browser.post(path, {"csrf": "x" * 40}).status == 403
    reply = browser.post(path, {"csrf": csrf_of(browser.get("/services"))})
    assert reply.status == 303 and reply.headers["Location"] == "/services"
    assert stop_requested(console.database, instance["id"]) is not None
    assert f'action="{path}"' not in browser.get("/services").text
    (asked,) = browser.get("/api/services").json()["instances"]
    assert asked["state"] == "stopping"
    missing = browser.post("/api/services/nosuch/stop", headers=console.bearer)
    assert missing.status == 404 and "nosuch" in missing.json()["error"]


def supervised_services(browser):
    reply = browser.get("/api/services").json()
    return reply["instances"], reply["supervisors"]


def test_the_start_button_has_the_supervisor_start_a_stopped_instance(
    runzeo,
    database,  # noqa: F811
    papa_kernel,  # noqa: F811
    tmp_path,
):
    token = new_token(tmp_path / "web.token")
    bearer = {"Authorization": f"Bearer {token}"}
    server = start_console(runzeo, database, tmp_path)
    browser = Browser(server.port)
    try:
        with supervised(runzeo, papa_kernel, tmp_path):
            (first,), (supervisor,) = wait_until(
                lambda: (
                    all(supervised_services(browser)) and supervised_services(browser)
                ),
                timeout=TIMEOUT,
                message="the supervised instance",
            )
            (service,) = supervisor["services"]
            assert service == {
                "section": "commandrunner",
                "service": "CommandRunner",
                "queue": "dispatch.commands",
                "instances": 1,
                "stopped": 0,
                "requested": False,
            }
            form = {"supervisor": supervisor["id"], "service": "commandrunner"}
            assert browser.post("/services/start", form).status == 401
            busy = browser.post("/api/services/start", form, headers=bearer)
            assert busy.status == 409 and "every instance" in busy.json()["error"]
            assert 'action="/services/start"' not in browser.get("/services").text

            stopped = browser.post(f"/api/services/{first['id']}/stop", headers=bearer)
            assert stopped.status == 200, stopped
            wait_until(
                lambda: (
                    supervised_services(browser)[1][0]["services"][0]["stopped"]
                    and not supervised_services(browser)[0]
                ),
                timeout=TIMEOUT,
                message="the instance to stop and the supervisor to say so",
            )
            page = browser.get("/services")
            assert 'action="/services/start"' in page.text
            login = browser.get("/login")
            browser.post("/login", {"token": token, "csrf": csrf_of(login)})
            assert (
                browser.post("/services/start", {**form, "csrf": "x" * 40}).status
                == 403
            )
            assert not supervised_services(browser)[1][0]["services"][0]["requested"]
            reply = browser.post(
                "/services/start", {**form, "csrf": csrf_of(browser.get("/services"))}
            )
            assert reply.status == 303 and reply.headers["Location"] == "/services"
            (again,) = wait_until(
                lambda: supervised_services(browser)[0],
                timeout=TIMEOUT,
                message="the supervisor to start the instance again",
            )
            assert again["id"] != first["id"] and again["service"] == "CommandRunner"
            wait_until(
                lambda: (
                    not supervised_services(browser)[1][0]["services"][0]["stopped"]
                ),
                timeout=TIMEOUT,
                message="the supervisor to say none is stopped",
            )
            for bad, status in (
                ({"supervisor": "nosuch", "service": "commandrunner"}, 404),
                ({"supervisor": supervisor["id"], "service": "nosuch"}, 404),
                ({"supervisor": supervisor["id"]}, 400),
            ):
                refused = browser.post("/api/services/start", bad, headers=bearer)
                assert refused.status == status, refused
                assert "nosuch" in refused.json()["error"] or status == 400
    finally:
        server.stop()
    # A supervisor that stopped says so (its record is no longer listed).
    wait_until(
        lambda: stopped_supervisors(database) == [True],
        timeout=TIMEOUT,
        message="the supervisor's record to say it stopped",
    )


def stopped_supervisors(db):
    with dispatch_state(db) as dispatch:
        records = supervisors.supervisors_of(dispatch).values()
        return [record.stopped is not None for record in records]
