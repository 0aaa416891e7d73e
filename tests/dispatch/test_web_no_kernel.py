"""The spawn and jobs pages when no papa kernel answers: the spawn page
still renders (with a notice), the jobs page and a submission are a 503
that says what to do, and the console never starts a kernel of its own."""

from dispatch.web.tokens import new_token
from tests.dispatch.test_web import database, start_console  # noqa: F401 (fixture)
from tests.dispatch.webconsole import Browser
from tests.support.network import free_port


def test_no_kernel_is_a_clear_503_and_starts_none(runzeo, database, tmp_path):  # noqa: F811
    token = new_token(tmp_path / "web.token")
    port = free_port()
    server = start_console(runzeo, database, tmp_path, papa=str(port))
    try:
        browser = Browser(server.port)
        page = browser.get("/spawn")
        assert page.status == 200 and "The partitions cannot be read now" in page.text
        assert f"no papa kernel answers at {port}" in page.text
        jobs = browser.get("/api/jobs")
        assert jobs.status == 503 and "start it" in jobs.json()["error"]
        submitted = browser.post(
            "/api/spawn",
            {"command": "hostname"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert submitted.status == 503
        # Papa() was told not to start a kernel: still nobody on the port.
        assert browser.get("/api/jobs").status == 503
    finally:
        server.stop()
