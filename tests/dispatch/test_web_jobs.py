"""The jobs pages against a real papa kernel (and runzeo, and the Slurm
cluster behind the kernel): every job's output tail, read with papa's
``peek`` so that a watcher still gets all of it, and ``/api/jobs/events``
announcing a process's start and end without a reload."""

import http.client
from urllib.parse import quote

import pytest

import papa
from tests.dispatch.test_web_run_page import events
from tests.dispatch.test_web_spawn import spawn  # noqa: F401 (fixture)
from tests.papa.conftest import read_all
from tests.support.polling import wait_until

pytestmark = pytest.mark.slurm
STREAM_TIMEOUT = 30


@pytest.fixture
def jobs(spawn):  # noqa: F811
    """The console, and a papa client of its kernel as ``client``."""
    with papa.Papa(spawn.kernel.port_or_path) as client:
        spawn.client = client
        yield spawn


def test_every_jobs_tail_is_shown_and_nothing_is_consumed(jobs):
    script = "for n in 1 2 3 4 5; do echo line $n; done; echo '<b>bold</b>' >&2"
    name = "dispatch-step.a-step"
    jobs.client.make_process(name, "/bin/sh", args=["-c", script])
    path = quote(name, safe="")

    def ended():
        return jobs.client.list_processes(name)[name]["running"] is False

    wait_until(ended, timeout=STREAM_TIMEOUT, message="the program")
    (row,) = jobs.browser.get("/api/jobs").json()["jobs"]
    assert row["name"] == name and row["tail"][-2:] == ["line 5", "<b>bold</b>"]
    page = jobs.browser.get(f"/jobs/{path}")
    assert "line 1\nline 2\n" in page.text and "&lt;b&gt;bold&lt;/b&gt;" in page.text
    assert "&lt;b&gt;bold&lt;/b&gt;" in jobs.browser.get("/jobs").text
    # The program's own watcher (a step runner) still gets every line.
    out, err, closed = read_all(jobs.client.watch_processes(name))
    assert out.decode().splitlines() == [f"line {n}" for n in range(1, 6)]
    assert err == b"<b>bold</b>\n" and closed == {name: 0}


def test_the_jobs_stream_announces_a_start_and_an_end(jobs, tmp_path):
    connection = http.client.HTTPConnection(
        "127.0.0.1", jobs.port, timeout=STREAM_TIMEOUT
    )
    try:
        connection.request("GET", "/api/jobs/events")
        reply = connection.getresponse()
        assert reply.status == 200
        assert reply.headers["Content-Type"] == "text/event-stream"
        stream = events(reply)
        assert next(stream) == ("ready", {})
        go = tmp_path / "go"
        jobs.client.make_process(
            "waiter",
            "/bin/sh",
            args=["-c", f"while [ ! -e {go} ]; do sleep 0.05; done"],
        )
        assert next(stream) == ("change", {})
        assert jobs.browser.get("/api/jobs/waiter").json()["job"]["running"]
        go.touch()
        # Each event is a change; within a few of them the end is shown.
        for _event in range(5):
            assert next(stream) == ("change", {})
            job = jobs.browser.get("/api/jobs/waiter").json()["job"]
            if not job["running"]:
                break
        assert job["state"] == "ENDED"
    finally:
        connection.close()
