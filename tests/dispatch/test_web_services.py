"""The services page's stop button against a real runzeo: it asks what
``dispatch shutdown ID`` asks (the instance's record says stop), needs a
login and, from a browser, the CSRF token; an unknown instance is a 404."""

from dispatch.state import admin
from dispatch.state.database import dispatch_state
from tests.dispatch.test_web import console, database  # noqa: F401 (fixtures)
from tests.dispatch.webconsole import csrf_of


def stop_requested(db, instance_id):
    with dispatch_state(db) as dispatch:
        return admin.instances_of(dispatch)[instance_id].stop_requested


def test_the_stop_button_asks_the_instance_to_stop(console):  # noqa: F811
    browser = console.browser
    (instance,) = browser.get("/api/services").json()["instances"]
    path = f"/services/{instance['id']}/stop"
    page = browser.get("/services")
    assert f'action="{path}"' in page.text
    assert browser.post(path, {"csrf": csrf_of(page)}).status == 401
    assert stop_requested(console.database, instance["id"]) is None
    login = browser.get("/login")
    browser.post("/login", {"token": console.token, "csrf": csrf_of(login)})
    assert browser.post(path, {"csrf": "x" * 40}).status == 403
    reply = browser.post(path, {"csrf": csrf_of(browser.get("/services"))})
    assert reply.status == 303 and reply.headers["Location"] == "/services"
    assert stop_requested(console.database, instance["id"]) is not None
    assert f'action="{path}"' not in browser.get("/services").text
    missing = browser.post("/api/services/nosuch/stop", headers=console.bearer)
    assert missing.status == 404 and "nosuch" in missing.json()["error"]
