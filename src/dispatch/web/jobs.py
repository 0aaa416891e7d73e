"""Jobs: the papa kernel's processes, local children and Slurm jobs alike
(``/jobs``: state, Slurm job id, reason, exit code), one job's page
(``/jobs/NAME``, with the output tail of a job /spawn made) and its
cancel button (``cancel processes``: scancel for a
job, SIGTERM then SIGKILL for a child), which needs a login and, from a
browser, the CSRF token.  papa's state lives in the kernel, not in zeo, so
the pages are refreshed by the browser every few seconds (``data-refresh``)
rather than on zeo's commits."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from aiohttp import web

from dispatch.web.console import both, console, done, respond
from dispatch.web.errors import not_found
from dispatch.web.kernel import peek_output

logger = logging.getLogger(__name__)

ROUTES = web.RouteTableDef()
# The names of the jobs /spawn makes (spawn.DATE-TIME.RANDOM).
SPAWNED_PREFIX = "spawn."


def job_path(name: str) -> str:
    """The job page's path (the name quoted whole)."""
    return "/jobs/" + quote(name, safe="")


def _row(name: str, info: dict[str, Any]) -> dict[str, Any]:
    running = info.get("running")
    state = info.get("state") or ("RUNNING" if running else "ENDED")
    reason = info.get("reason", "")
    return {
        "name": name,
        "state": state,
        "kind": "slurm" if "slurm_job" in info else "local",
        "slurm_job": info.get("slurm_job"),
        "partition": info.get("partition", ""),
        "reason": "" if reason == "-" else str(reason).replace("_", " "),
        "exit_code": info.get("exit_code"),
        "pid": info.get("pid"),
        "running": bool(running) or state in ("PENDING", "RUNNING", "SUBMITTING"),
        "args": info.get("args", ""),
    }


@both(ROUTES, "GET", "/jobs")
async def jobs_list(request: web.Request) -> web.StreamResponse:
    processes = await console(request).kernel.call(lambda c: c.list_processes())
    rows = [_row(name, info) for name, info in sorted(processes.items())]
    return respond(request, "jobs.html", {"jobs": rows})


@both(ROUTES, "GET", "/jobs/{name}")
async def job_page(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    # A name with a wildcard would list others: only the exact one is shown.
    processes = await console(request).kernel.call(lambda c: c.list_processes())
    if name not in processes:
        raise not_found(f"no process {name!r} in the papa kernel (see /jobs)")
    job = _row(name, processes[name])
    # Only the console's own jobs: peeking at a program another client
    # watches (a step's, an instance's) would cut into its watch.
    tail = None
    if name.startswith(SPAWNED_PREFIX):
        tail = await console(request).kernel.call(lambda c: peek_output(c, name))
    return respond(request, "job.html", {"job": job, "tail": tail})


@both(ROUTES, "POST", "/jobs/{name}/cancel")
async def cancel(request: web.Request) -> web.StreamResponse:
    here = console(request)
    actor = await here.gate.require(request)
    name = request.match_info["name"]
    processes = await here.kernel.call(lambda c: c.list_processes())
    if name not in processes:
        raise not_found(f"no process {name!r} in the papa kernel (see /jobs)")
    ended = await here.kernel.call(lambda c: c.cancel_processes(name))
    logger.info("%s cancelled %s: %s", actor.name, name, ended)
    return done(request, {"job": name, "exit_code": ended.get(name)}, job_path(name))
