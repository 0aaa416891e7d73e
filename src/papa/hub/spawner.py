"""``MOSlurmSpawner``: jupyterhub-moss's spawner, with papa's kernel
submitting and watching the Slurm jobs.

moss (through batchspawner) runs ``sbatch``/``squeue``/``scancel`` from the
hub process and keeps the job id in the hub's database.  Here the papa
kernel of the hub's host (a separate, long-lived process with a state
directory) submits the job and follows it: the hub only names it
(``jupyterhub.USER.SERVER``), so a hub killed and started again asks the
kernel about that name and finds the server still running, with its
address, and a query that fails (kernel or controller unreachable) is never
taken for a job that ended (batchspawner issue 315).

The configuration names are moss's: ``partitions``, ``req_prologue``,
``req_options``, ``singularity_cmd``, ``start_timeout`` (300 s, as
batchspawner), the options of the spawn form and URL (see
:mod:`papa.hub.options`).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import time
from typing import Any

import traitlets
from jupyterhub.spawner import Spawner

from papa import Papa
from papa.errors import Error
from papa.hub import launch, options
from papa.hub.config import ConfigurationError, check_partitions, slurm_settings
from papa.hub.form import check_user_options, checked_fields, render_form
from papa.hub.shared import Claimed, SharedServers
from papa.slurm.partitions import SlurmSettings
from zeo.address import parse_address

# One connection to each zeo server named by zeo_state, for every spawner.
_SHARED: dict[str, SharedServers] = {}
# How often start() looks at the job while it waits for the server's port.
START_POLL_SECONDS = 0.5
# How long stop() waits for a cancelled job to end.
STOP_WAIT_SECONDS = 30
# Slurm job states in which the job has not started yet.
PENDING_STATES = ("PENDING", "CONFIGURING", "REQUEUED", "SUSPENDED")
DIED_BEFORE_LAUNCH = (
    "The Jupyter batch job started but died before launching the single-user server."
)
DISAPPEARED = (
    "The Jupyter batch job has disappeared while pending in the queue "
    "or died immediately after starting."
)


class MOSlurmSpawner(Spawner):
    """Single-user servers as Slurm jobs, through the papa kernel."""

    partitions = traitlets.Dict(
        help="""Partitions offered, as jupyterhub-moss's ``partitions``: name ->
        architecture, description, gpu, max_ngpus, max_nprocs, max_runtime,
        simple, jupyter_environments (id -> description, path, modules,
        add_to_path, prologue).""",
    ).tag(config=True)

    papa_kernel = traitlets.Union(
        [traitlets.Integer(), traitlets.Unicode()],
        default_value=20202,
        help="""The papa kernel that submits the jobs: a port on 127.0.0.1 or
        a Unix socket path.  It must run with a state directory (papa -C
        conf/papa.conf), so that it outlives the hub.""",
    ).tag(config=True)

    papa_token_file = traitlets.Unicode(
        "",
        help="The kernel's token file, when the kernel asks for one.",
    ).tag(config=True)

    job_user = traitlets.Unicode(
        "{username}",
        help="""Who a server's job runs as: ``{username}`` (the hub's user name,
        as moss's ``sudo -u {username}``; the kernel must run as root and
        its state directory be searchable by others), another name, or ""
        for the kernel's own user.""",
    ).tag(config=True)

    zeo_state = traitlets.Unicode(
        "",
        help="""A zeo server (HOST:PORT or a socket path) where every server is
        recorded too, so that several hubs agree: one starts it, the others
        use it (papa.hub.shared).  Empty: each hub keeps its own.""",
    ).tag(config=True)

    req_prologue = traitlets.Unicode(
        "", help="Shell code run in every job before the environment's prologue."
    ).tag(config=True)

    req_options = traitlets.Unicode(
        "", help="Extra sbatch options added to every job."
    ).tag(config=True)

    singularity_cmd = traitlets.List(
        trait=traitlets.Unicode(),
        default_value=["singularity", "exec"],
        help="How a server is started in a .sif environment image.",
    ).tag(config=True)

    startup_poll_interval = traitlets.Float(
        START_POLL_SECONDS, help="Seconds between looks at a starting job."
    ).tag(config=True)

    process_name = traitlets.Unicode("")
    # The refused form's values and errors by field, for the form shown again.
    form_state: tuple[dict[str, str], dict[str, str]] | None = None
    job_id = traitlets.Unicode("")
    job_state = traitlets.Unicode("")

    @traitlets.default("start_timeout")
    def _start_timeout_default(self) -> int:
        return 300

    @traitlets.default("apply_user_options")
    def _apply_user_options_default(self) -> Any:
        return check_user_options

    @traitlets.validate("partitions")
    def _check_partitions(self, proposal: dict) -> dict:
        try:
            return check_partitions(proposal["value"])
        except ConfigurationError as error:
            raise traitlets.TraitError(str(error)) from None

    # -- the kernel ------------------------------------------------------------------
    def _papa(self) -> Papa:
        token = None
        if self.papa_token_file:
            from papa.security import read_token

            token = read_token(self.papa_token_file)
        address = self.papa_kernel
        if isinstance(address, str) and address.isdigit():
            address = int(address)
        # host= keeps the client from starting a kernel of its own: one
        # started inside the hub would die with it.
        host = None if isinstance(address, str) else "127.0.0.1"
        return Papa(address, host=host, token=token)

    async def _kernel(self, method: str, *arguments: Any, **keywords: Any) -> Any:
        def call() -> Any:
            with self._papa() as papa:
                return getattr(papa, method)(*arguments, **keywords)

        return await asyncio.to_thread(call)

    @property
    def settings(self) -> SlurmSettings:
        cached = getattr(self, "_settings", None)
        if cached is None or cached[0] is not self.partitions:
            cached = (self.partitions, slurm_settings(self.partitions))
            self._settings = cached
        return cached[1]

    def _job_user(self) -> str:
        return self.job_user.format(username=self.user.name)

    def _home(self) -> str:
        user = self._job_user()
        if not user:
            return os.path.expanduser("~")
        try:
            return pwd.getpwnam(user).pw_dir
        except KeyError:
            raise RuntimeError(
                f"no user {user!r} on the hub's host to run the job as "
                '(job_user; set it to "" to run jobs as the kernel\'s user)'
            ) from None

    def _name(self) -> str:
        server = self.name or "default"
        return f"jupyterhub.{self.user.name}.{server}"

    # -- the form --------------------------------------------------------------------
    @traitlets.default("options_form")
    def _options_form_default(self) -> Any:
        return render_form

    async def options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, Any]:
        return await checked_fields(self, formdata)

    async def options_from_query(self, query: dict[str, list[str]]) -> dict[str, Any]:
        return await checked_fields(self, query)

    # -- start, poll, stop ---------------------------------------------------------
    async def checked_options(
        self, user_options: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The options completed as moss does, and papa's Slurm request
        (:class:`~papa.hub.options.OptionsError` when one is refused)."""
        chosen = options.user_options(user_options or {})
        request = await asyncio.to_thread(
            options.slurm_request,
            chosen,
            self.settings,
            self.req_prologue,
            self.req_options,
        )
        return chosen, request

    async def start(self) -> tuple[str, int]:
        chosen, request = await self.checked_options(self.user_options)
        if chosen["default_url"]:
            self.default_url = chosen["default_url"]
        if chosen["root_dir"]:
            self.notebook_dir = chosen["root_dir"]
        name = self._name()
        environment = self.get_env()
        command = launch.command(
            chosen["environment_path"],
            list(self.cmd),
            self.get_args(),
            list(self.singularity_cmd),
        )
        shared = self._shared()
        if shared is not None:
            adopted = await self._claim_or_adopt(shared, name)
            if adopted is not None:
                return adopted
        try:
            address = await self._submit(name, command, environment, request)
        except BaseException:
            if shared is not None:
                await asyncio.to_thread(shared.forget, self._key())
            raise
        if shared is not None:
            await asyncio.to_thread(
                shared.update,
                self._key(),
                job_id=self.job_id,
                ip=address[0],
                port=address[1],
            )
        return address

    async def _submit(
        self,
        name: str,
        command: list[str],
        environment: dict[str, str],
        request: dict[str, str],
    ) -> tuple[str, int]:
        await self._forget(name)
        self.log.info(
            "submitting %s through papa: %s; %s",
            name,
            request,
            launch.shell_line(command),
        )
        entry = await self._kernel(
            "make_process",
            name,
            command[0],
            command[1:],
            env=environment,
            uid=self._job_user() or None,
            # As moss's --chdir={homedir}: the server's root is the home
            # unless root_dir says otherwise (JUPYTERHUB_ROOT_DIR).
            working_dir=self._home(),
            slurm=request,
        )
        self.process_name = name
        self.job_id = str(entry.get("slurm_job", ""))
        self.job_state = entry.get("state", "")
        address = await self._wait_for_address(name)
        self.log.info("server %s of job %s is at %s:%d", name, self.job_id, *address)
        return address

    # -- servers shared with other hubs (zeo_state) ------------------------------
    def _shared(self) -> SharedServers | None:
        if not self.zeo_state:
            return None
        found = _SHARED.get(self.zeo_state)
        if found is None:
            found = SharedServers(parse_address(self.zeo_state))
            _SHARED[self.zeo_state] = found
        return found

    def _key(self) -> str:
        return f"{self.user.name}/{self.name}"

    async def _claim_or_adopt(
        self, shared: SharedServers, name: str
    ) -> tuple[str, int] | None:
        """Claim this server for this hub (None), or the address of the one
        another hub started (or is starting: wait for it)."""
        record = {"kernel": str(self.papa_kernel), "process_name": name}
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                await asyncio.to_thread(shared.claim, self._key(), record)
                return None
            except Claimed as claimed:
                other = claimed.record
            if other.get("port"):
                if await self._still_runs(shared, other):
                    self.process_name = other["process_name"]
                    self.job_id = str(other.get("job_id", ""))
                    self.log.info(
                        "%s was started by hub %s: using it", name, other.get("hub")
                    )
                    return other["ip"], int(other["port"])
                await asyncio.to_thread(shared.forget, self._key())
                continue
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"hub {other.get('hub')} is starting this server and has "
                    f"not finished in {self.start_timeout} s"
                )
            await asyncio.sleep(self.startup_poll_interval)

    async def _still_runs(self, shared: SharedServers, record: dict) -> bool:
        """Whether a recorded server still runs (True when its kernel is
        another host's: only that hub can tell, and it will)."""
        if record.get("hub") != shared.hub or record.get("kernel") != str(
            self.papa_kernel
        ):
            return True
        try:
            found = await self._kernel("list_processes", record["process_name"])
        except (Error, OSError):
            return True
        entry = found.get(record["process_name"])
        return bool(entry and entry.get("running"))

    async def _forget(self, name: str) -> None:
        """Remove an ended process of this name (a kernel keeps them listed)."""
        found = await self._kernel("list_processes", name)
        if name in found:
            if found[name].get("running"):
                raise RuntimeError(
                    f"a job {name} (Slurm job {found[name].get('slurm_job')}) "
                    "still runs: stop it first"
                )
            await self._kernel("remove_processes", name)

    async def _wait_for_address(self, name: str) -> tuple[str, int]:
        output = b""
        ran = False
        while True:
            data, entry = await asyncio.to_thread(self._read_output, name)
            output += data
            address = launch.find_address(output)
            if address is not None:
                return address
            if entry is not None and entry.get("running"):
                self.job_state = entry.get("state", "")
                ran = ran or self.job_state not in PENDING_STATES
                await asyncio.sleep(self.startup_poll_interval)
                continue
            self.clear_state()
            # The script writes its exit status: one means it ran.
            code = (entry or {}).get("exit_code")
            if ran or output or (isinstance(code, int) and code >= 0):
                raise RuntimeError(DIED_BEFORE_LAUNCH + _reason(entry))
            raise RuntimeError(DISAPPEARED + _reason(entry))

    def _read_output(self, name: str) -> tuple[bytes, dict[str, Any] | None]:
        """Output the job printed since the last call, and its entry."""
        with self._papa() as papa:
            entry = papa.list_processes(name).get(name)
            if entry is None:
                return b"", None
            watcher = papa.watch_processes(name)
            data = b""
            try:
                while watcher.ready:
                    batch = watcher.read()
                    data += b"".join(record.data for record in batch[0])
                    if not batch:
                        break
            finally:
                watcher.close()
            return data, entry

    async def _load_shared(self) -> None:
        """Take the server another hub recorded, if this hub knows none."""
        shared = self._shared()
        if shared is None or self.process_name:
            return
        record = await asyncio.to_thread(shared.get, self._key())
        if record and record.get("port"):
            self.process_name = record["process_name"]
            self.job_id = str(record.get("job_id", ""))

    async def poll(self) -> int | None:
        await self._load_shared()
        if not self.process_name:
            return 0
        try:
            found = await self._kernel("list_processes", self.process_name)
        except (Error, OSError) as error:
            # Not knowing is not dying: the server stays routed.
            self.log.warning(
                "cannot ask papa about %s (%s): taken as still running",
                self.process_name,
                error,
            )
            return None
        entry = found.get(self.process_name)
        if entry is None:
            await self._forget_shared()
            self.clear_state()
            return 1
        self.job_state = entry.get("state", "")
        if entry.get("running"):
            return None
        code = entry.get("exit_code")
        await self._forget_shared()
        self.clear_state()
        return code if isinstance(code, int) and code >= 0 else 1

    async def _forget_shared(self) -> None:
        shared = self._shared()
        if shared is not None:
            await asyncio.to_thread(shared.forget, self._key())

    async def stop(self, now: bool = False) -> None:
        await self._load_shared()
        if not self.process_name:
            return
        name = self.process_name
        try:
            await self._kernel("cancel_processes", name)
            await self._kernel("remove_processes", name)
        except Error as error:
            if "not found" not in str(error):
                raise
        await self._wait_ended(name)
        await self._forget_shared()
        self.clear_state()

    async def _wait_ended(self, name: str) -> None:
        """Wait until the cancelled job has ended (Slurm takes a moment), so
        that a spawn right after the stop does not find it still running
        (as batchspawner, a bounded wait: then it only logs)."""
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while time.monotonic() < deadline:
            try:
                found = await self._kernel("list_processes", name)
            except (Error, OSError):
                return
            if not found.get(name, {}).get("running"):
                return
            await asyncio.sleep(self.startup_poll_interval)
        self.log.warning("%s still runs %d s after scancel", name, STOP_WAIT_SECONDS)

    async def progress(self):  # type: ignore[override]
        started = time.monotonic()
        while self._spawn_pending if hasattr(self, "_spawn_pending") else False:
            if self.job_state in PENDING_STATES:
                message = "Pending in queue..."
            elif self.job_state:
                message = "Cluster job running... waiting to connect"
            else:
                message = "Submitting the job..."
            elapsed = time.monotonic() - started
            yield {
                "progress": min(90, 10 + int(elapsed)),
                "message": f"{message} (Slurm job {self.job_id or '-'})",
            }
            await asyncio.sleep(1)

    # -- state kept in the hub's database ------------------------------------------
    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        if self.process_name:
            state.update(process_name=self.process_name, job_id=self.job_id)
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.process_name = state.get("process_name", "")
        self.job_id = state.get("job_id", "")

    def clear_state(self) -> None:
        super().clear_state()
        self.process_name = ""
        self.job_id = ""
        self.job_state = ""


def _reason(entry: dict[str, Any] | None) -> str:
    if not entry:
        return ""
    details = [
        f"{key} {entry[key]}"
        for key in ("slurm_job", "state", "reason", "exit_code")
        if entry.get(key) not in (None, "", "-")
    ]
    return f" ({', '.join(details)})" if details else ""
