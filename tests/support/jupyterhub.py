"""A real JupyterHub (from the venv) with its real proxy
(configurable-http-proxy from the npm registry, ``make peers``), spawning
through ``papa.hub`` and a real papa kernel, for the tests of papa.hub.

The hub runs as its own process on free ports of 127.0.0.1, with a SQLite
database in the test's folder, the DummyAuthenticator and a service token
that may manage every user's server.  ``kill()`` is a real SIGKILL.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .network import free_port
from .peers import PYTHON, our_env, require_peer
from .polling import wait_until

HUB_TIMEOUT = 120.0
DUMMY_PASSWORD = "not-a-secret"

CONFIG = """\
import papa.hub
papa.hub.set_config(c)
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {password!r}
c.Authenticator.allow_all = True
c.JupyterHub.bind_url = "http://127.0.0.1:{public}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api}"
c.ConfigurableHTTPProxy.command = [{proxy!r}]
# The servers are Slurm jobs: a stopped hub must leave them running.
c.JupyterHub.cleanup_servers = False
c.JupyterHub.db_url = "sqlite:///{folder}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{folder}/cookie_secret"
c.JupyterHub.pid_file = "{folder}/hub.pid"
c.ConfigurableHTTPProxy.pid_file = "{folder}/proxy.pid"
c.JupyterHub.services = [{{"name": "tester", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{
    "name": "tester",
    "scopes": ["admin:users", "admin:servers", "access:servers", "read:users"],
    "services": ["tester"],
}}]
c.MOSlurmSpawner.papa_kernel = {kernel!r}
# The hub's users are not users of this machine: jobs run as the kernel's.
c.MOSlurmSpawner.job_user = ""
# Jobs of the test cluster run as root, which jupyter-server refuses by default.
c.MOSlurmSpawner.args = ["--allow-root"]
c.MOSlurmSpawner.start_timeout = 120
# Tests wait for the server: look at a starting job often (default 0.5 s).
c.MOSlurmSpawner.startup_poll_interval = 0.1
c.MOSlurmSpawner.partitions = {partitions!r}
{extra}
"""


class HubProcess:
    """``jupyterhub -f CONFIG`` in *folder*, spawning through the kernel at
    *kernel* with moss's *partitions*."""

    def __init__(
        self,
        folder: Path,
        kernel: int | str,
        partitions: dict[str, Any],
        extra: str = "",
        token: str | None = None,
    ) -> None:
        chp = require_peer("chp") / "node_modules" / ".bin" / "configurable-http-proxy"
        self.folder = folder
        self.public_port = free_port()
        # Hubs that stand for one another share their service's token.
        self.token = token or secrets.token_hex(16)
        self.config = folder / "jupyterhub_config.py"
        self.config.write_text(
            CONFIG.format(
                password=DUMMY_PASSWORD,
                public=self.public_port,
                hub=free_port(),
                proxy_api=free_port(),
                proxy=str(chp),
                folder=folder,
                token=self.token,
                kernel=kernel,
                partitions=partitions,
                extra=extra,
            )
        )
        self.log = folder / "hub.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.public_port}"

    def start(self) -> HubProcess:
        """Start the hub and wait until it answers."""
        return self.launch().wait_ready()

    def launch(self) -> HubProcess:
        """Start the hub without waiting (hubs started together start in
        parallel: most of a start is Python importing JupyterHub)."""
        environment = our_env()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [str(Path(PYTHON).parent / "jupyterhub"), "-f", str(self.config)],
                env=environment,
                cwd=self.folder,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        return self

    def wait_ready(self) -> HubProcess:
        wait_until(self._ready, HUB_TIMEOUT, message=f"JupyterHub at {self.url}")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"jupyterhub exited with {self.process.returncode}:\n"
                + self.log.read_text()[-4000:]
            )
        try:
            return self.api("GET", "/")[0] == 200
        except OSError:
            return False

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """``(status, JSON)`` of a hub API request made with the service token."""
        request = urllib.request.Request(
            f"{self.url}/hub/api{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=HUB_TIMEOUT) as response:
                data = response.read()
                return response.status, json.loads(data) if data else None
        except urllib.error.HTTPError as error:
            data = error.read()
            try:
                return error.code, json.loads(data)
            except ValueError:
                return error.code, data.decode("utf-8", "replace")

    def server(self, user: str, name: str = "") -> dict[str, Any] | None:
        """The user's server as the hub's API describes it (None: none)."""
        status, found = self.api("GET", f"/users/{user}")
        assert status == 200, found
        return found["servers"].get(name)

    def kill(self) -> None:
        """SIGKILL the hub alone (its proxy and the jobs live on)."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        """Stop the hub and its proxy (the servers' jobs are left alone)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(HUB_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        proxy_pid = self.folder / "proxy.pid"
        if proxy_pid.exists():
            try:
                os.kill(int(proxy_pid.read_text()), signal.SIGTERM)
            except (OSError, ValueError):
                pass
