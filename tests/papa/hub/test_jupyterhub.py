"""papa.hub in a real JupyterHub: single-user servers (jupyter-server) as
jobs of the real Slurm test cluster, submitted by a real papa kernel, reached
through JupyterHub's real proxy.

One kernel and one hub serve the module's tests (a hub start is mostly
Python importing JupyterHub, tens of seconds on a loaded machine); each
test leaves no server behind, and the hub is started again if a test
killed it.

Skipped with the reason without the cluster (``make slurm-up``) or the
proxy (``make peers``); in CI both must be there.
"""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest
import requests

from papa.hub.spawner import DIED_BEFORE_LAUNCH
from tests.support import PYTHON, free_port, wait_until
from tests.support.jupyterhub import DUMMY_PASSWORD, HubProcess
from tests.support.slurm import SlurmKernel, require_cluster

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SERVER_DEADLINE = 120.0
VENV = str(Path(PYTHON).parent)
PARTITIONS = {
    "debug": {
        "description": "Short jobs",
        "architecture": "x86_64",
        "jupyter_environments": {
            "venv": {"description": "The test venv", "path": VENV},
            "broken": {
                "description": "Dies in its prologue",
                "path": VENV,
                "prologue": "exit 3",
            },
        },
    },
    "long": {
        "description": "Long jobs",
        "simple": False,
        "max_nprocs": 1,
        "jupyter_environments": {"venv": {"description": "venv", "path": VENV}},
    },
}


USERS = ("alice", "bob")


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    require_cluster()
    folder = tmp_path_factory.mktemp("kernel")
    started = SlurmKernel(folder, state_dir=folder / "papa-state").start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def module_hub(tmp_path_factory, kernel):
    """One hub for the module's tests (each leaves no server behind)."""
    process = HubProcess(
        tmp_path_factory.mktemp("hub"), kernel.port_or_path, PARTITIONS
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture
def hub(module_hub):
    yield module_hub
    if module_hub.process is None or module_hub.process.poll() is not None:
        module_hub.start()  # a test that killed it and failed
    for user in USERS:
        module_hub.api("DELETE", f"/users/{user}/server")
    for user in USERS:
        wait_until(
            lambda user=user: no_server(module_hub, user),
            SERVER_DEADLINE,
            message=f"{user}'s server stopped",
        )


def no_server(hub: HubProcess, user: str) -> bool:
    status, found = hub.api("GET", f"/users/{user}")
    return status == 404 or (status == 200 and "" not in found["servers"])


def ready(hub: HubProcess, user: str) -> bool:
    server = hub.server(user)
    return bool(server and server["ready"])


def squeue_ids() -> set[str]:
    listed = subprocess.run(
        ["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True
    )
    return set(listed.stdout.split())


def spawn(hub: HubProcess, user: str, options: dict) -> dict:
    hub.api("POST", f"/users/{user}")
    status, reply = hub.api("POST", f"/users/{user}/server", options)
    assert status in (201, 202), reply
    wait_until(
        lambda: ready(hub, user), SERVER_DEADLINE, message=f"{user}'s server ready"
    )
    server = hub.server(user)
    assert server is not None
    return server


def through_proxy(hub: HubProcess, user: str) -> int:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{hub.url}/user/{user}/api/status",
        headers={"Authorization": f"token {hub.token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_a_server_runs_as_a_slurm_job_and_stops(hub, kernel):
    server = spawn(hub, "alice", {"partition": "debug", "nprocs": "1", "runtime": "10"})
    job = server["state"]["job_id"]
    assert server["state"]["process_name"] == "jupyterhub.alice.default"
    assert job in squeue_ids()
    assert through_proxy(hub, "alice") == 200
    status, reply = hub.api("DELETE", "/users/alice/server")
    assert status in (202, 204), reply
    wait_until(lambda: hub.server("alice") is None, SERVER_DEADLINE, message="stop")
    # Stopped means ended: the kernel has forgotten the job, so a spawn
    # right after does not find it still running.
    assert "jupyterhub.alice.default" not in kernel_processes(kernel)
    wait_until(lambda: job not in squeue_ids(), SERVER_DEADLINE, message="job gone")


def test_a_hub_killed_finds_its_server_again(hub):
    server = spawn(hub, "alice", {"partition": "debug"})
    job = server["state"]["job_id"]
    hub.kill()
    hub.start()
    again = hub.server("alice")
    assert again is not None and again["ready"], again
    assert again["state"]["job_id"] == job
    assert through_proxy(hub, "alice") == 200
    assert job in squeue_ids()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"partition": "debug", "nprocs": "64"}, "Unsupported number of CPU cores"),
        ({"partition": "long", "nprocs": "2"}, "Unsupported number of CPU cores"),
        (
            {"partition": "debug", "runtime": "3:00:00"},
            "Requested runtime exceeds partition time limit",
        ),
        ({"partition": "debug", "ngpus": "1"}, "Unsupported number of GPUs"),
        ({"partition": "nosuch"}, "Partition nosuch is not available"),
        ({"partition": "debug", "options": "--x\n#SBATCH --y"}, "newline"),
    ],
)
def test_a_request_over_the_limits_is_refused_with_moss_message(hub, options, message):
    hub.api("POST", "/users/bob")
    status, reply = hub.api("POST", "/users/bob/server", options)
    assert status == 400, reply
    assert message in reply["message"]
    assert hub.server("bob") is None


def test_a_job_that_dies_before_the_server_starts_says_so(hub):
    hub.api("POST", "/users/bob")
    hub.api(
        "POST", "/users/bob/server", {"partition": "debug", "environment_id": "broken"}
    )
    wait_until(
        lambda: DIED_BEFORE_LAUNCH in hub.log.read_text(),
        SERVER_DEADLINE,
        message="the hub to log why the spawn failed",
    )
    wait_until(lambda: hub.server("bob") is None, SERVER_DEADLINE, message="cleared")


def login(hub: HubProcess, user: str) -> requests.Session:
    """A browser's session of *user*, logged in (the hub's cookies)."""
    session = requests.Session()
    page = session.get(f"{hub.url}/hub/login", timeout=30)
    assert page.status_code == 200
    reply = session.post(
        f"{hub.url}/hub/login",
        data={
            "username": user,
            "password": DUMMY_PASSWORD,
            "_xsrf": session.cookies.get("_xsrf"),
        },
        timeout=30,
    )
    assert reply.status_code == 200, reply.text[-2000:]
    return session


def test_spawn_through_url_and_the_form(hub):
    session = login(hub, "alice")
    form = session.get(f"{hub.url}/hub/spawn", timeout=60)
    assert form.status_code == 200
    assert 'name="partition"' in form.text and "Short jobs" in form.text
    assert 'name="nprocs"' in form.text
    # The console's fields: both tabs, with moss's names, inside the hub's
    # own form (no second <form>, no console CSRF, no "what to run").
    for marker in ('id="panel-simple"', 'id="panel-advanced"', 'id="partitions"'):
        assert marker in form.text
    for field in ("environment_id", "environment_path", "environment_modules"):
        assert f'name="{field}"' in form.text
    assert 'name="output" id="field-output" value="true"' in form.text
    assert 'name="default_url" id="field-default_url" value="/lab"' in form.text
    assert 'name="csrf"' not in form.text and 'name="recipe"' not in form.text
    assert form.text.count("<form") == 1
    assert "/hub/form/spawn.js?v=" in form.text
    script = session.get(f"{hub.url}/hub/form/spawn.js", timeout=30)
    assert script.status_code == 200 and "spawn-form" in script.text
    spawned = session.get(
        f"{hub.url}/hub/spawn",
        params={"partition": "debug", "nprocs": "1", "runtime": "10", "colour": "red"},
        allow_redirects=False,
        timeout=60,
    )
    assert spawned.status_code == 302, spawned.text[-2000:]
    assert "/hub/spawn-pending/alice" in spawned.headers["Location"]
    wait_until(lambda: ready(hub, "alice"), SERVER_DEADLINE, message="ready")
    server = hub.server("alice")
    assert server is not None
    assert server["user_options"]["partition"] == "debug"
    assert server["user_options"]["nprocs"] == 1


def test_an_over_limit_form_or_url_shows_moss_message_beside_the_field(hub):
    session = login(hub, "bob")
    refused = session.post(
        f"{hub.url}/hub/spawn",
        data={
            "tab": "advanced",
            "partition": "debug",
            "nprocs": "64",
            "_xsrf": session.cookies.get("_xsrf"),
        },
        timeout=60,
    )
    # Not a 500, not the banner alone: a 400, the hub's page with the form
    # again, the value given marked invalid with moss's message beside it.
    assert refused.status_code == 400, refused.text[-2000:]
    assert "spawn-error-msg alert alert-danger" in refused.text  # the hub's banner
    assert 'value="64" placeholder="1" class="form-control is-invalid">' in refused.text
    assert (
        '<span class="field-error invalid-feedback d-block" id="error-nprocs" '
        'role="alert">Unsupported number of CPU cores</span>'
    ) in refused.text
    assert 'id="spawn-tab" value="advanced"' in refused.text
    by_url = session.get(
        f"{hub.url}/hub/spawn",
        params={"partition": "debug", "runtime": "3:00:00"},
        allow_redirects=False,
        timeout=60,
    )
    assert by_url.status_code == 400, by_url.text[-2000:]
    assert (
        'id="error-simple-runtime" role="alert">'
        "Requested runtime exceeds partition time limit</span>"
    ) in by_url.text
    assert hub.server("bob") is None


def test_cookie_requests_without_the_xsrf_token_are_refused(hub):
    session = login(hub, "bob")
    fields = {"partition": "debug"}
    # JupyterHub's XSRF check guards the spawner's form, the API a browser
    # reaches with the hub's cookie, and the handler set_config adds.
    spawn = session.post(f"{hub.url}/hub/spawn", data=fields, timeout=60)
    assert spawn.status_code == 403, spawn.text[-2000:]
    api = session.post(f"{hub.url}/hub/api/users/bob/server", json=fields, timeout=60)
    assert api.status_code == 403, api.text[-2000:]
    script = session.post(f"{hub.url}/hub/form/spawn.js", data=fields, timeout=60)
    assert script.status_code == 403, script.text[-2000:]
    assert hub.server("bob") is None
    # With the token the same session gets past the check (and the spawner
    # refuses the request on its merits).
    checked = session.post(
        f"{hub.url}/hub/spawn",
        data={"partition": "nosuch", "_xsrf": session.cookies.get("_xsrf")},
        timeout=60,
    )
    assert checked.status_code == 400 and "Partition nosuch is not available" in (
        checked.text
    )


def test_two_users_each_see_only_their_own_server(hub):
    jobs = {
        user: spawn(hub, user, {"partition": "debug"})["state"]["job_id"]
        for user in USERS
    }
    assert jobs["alice"] != jobs["bob"] and set(jobs.values()) <= squeue_ids()
    alice = login(hub, "alice")
    own = alice.get(f"{hub.url}/hub/api/users/alice", timeout=30)
    assert own.status_code == 200 and own.json()["servers"][""]["ready"]
    assert alice.get(f"{hub.url}/hub/api/users/bob", timeout=30).status_code == 404
    listed = alice.get(f"{hub.url}/hub/api/users", timeout=30)
    # Refused, or only herself (JupyterHub's user role may list no one).
    assert listed.status_code == 403 or [user["name"] for user in listed.json()] == [
        "alice"
    ], listed.text
    # Each server is routed: the proxy reaches both.
    assert through_proxy(hub, "alice") == through_proxy(hub, "bob") == 200
    # Stopping bob's leaves alice's job running.
    status, reply = hub.api("DELETE", "/users/bob/server")
    assert status in (202, 204), reply
    wait_until(lambda: jobs["bob"] not in squeue_ids(), SERVER_DEADLINE, message="bob")
    assert jobs["alice"] in squeue_ids() and ready(hub, "alice")


def test_two_hubs_sharing_zeo_agree_on_a_server(tmp_path, kernel):
    from tests.support import RunzeoProcess

    port = free_port()
    store = RunzeoProcess(
        tmp_path,
        f"<zeo>\n  address 127.0.0.1:{port}\n</zeo>\n"
        f"<filestorage 1>\n  path {tmp_path / 'Data.fs'}\n</filestorage>\n",
        ("127.0.0.1", port),
    )
    store.start()
    # The hubs poll their servers every second (JupyterHub: 30 s).
    shared = (
        f'c.MOSlurmSpawner.zeo_state = "127.0.0.1:{port}"\n'
        "c.MOSlurmSpawner.poll_interval = 1\n"
    )
    hubs: list[HubProcess] = []
    token = secrets.token_hex(16)
    try:
        for name in ("a", "b"):
            folder = tmp_path / f"hub-{name}"
            folder.mkdir()
            hubs.append(
                HubProcess(
                    folder, kernel.port_or_path, PARTITIONS, shared, token
                ).launch()
            )
        first, second = (hub_process.wait_ready() for hub_process in hubs)
        server = spawn(first, "alice", {"partition": "debug"})
        job = server["state"]["job_id"]
        # The second hub is asked for alice's server too: it uses the one
        # the first started instead of submitting a second job.
        again = spawn(second, "alice", {"partition": "debug"})
        assert again["state"]["job_id"] == job
        assert through_proxy(second, "alice") == 200
        assert [name for name in kernel_processes(kernel) if "alice" in name] == [
            "jupyterhub.alice.default"
        ]
        status, reply = second.api("DELETE", "/users/alice/server")
        assert status in (202, 204), reply
        wait_until(lambda: job not in squeue_ids(), SERVER_DEADLINE, message="gone")
        # The first hub, polling, finds its server ended: no new job.
        wait_until(
            lambda: first.server("alice") is None, SERVER_DEADLINE, message="poll"
        )
    finally:
        for hub_process in hubs:
            hub_process.api("DELETE", "/users/alice/server")
            hub_process.stop()
        store.stop()


def kernel_processes(kernel) -> list[str]:
    import papa

    with papa.Papa(kernel.port_or_path, connection_timeout=30) as client:
        return sorted(client.list_processes())
