"""Jobs: the papa kernel's processes, local children and Slurm jobs alike
(``/jobs``: state, Slurm job id, reason, exit code, the last lines of
output), one job's page (``/jobs/NAME``, with its output tail) and its
cancel button (``cancel processes``: scancel for a job, SIGTERM then
SIGKILL for a child), which needs a login and, from a browser, the CSRF
token.  Output is read with papa's ``peek``, which consumes nothing (the
step runner or supervisor watching a program still gets all of it).  The
pages are live through ``/api/jobs/events`` (:mod:`~dispatch.web.jobevents`)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from aiohttp import web

import papa
from dispatch.web.console import both, console, done, respond
from dispatch.web.errors import not_found
from dispatch.web.kernel import peek_output

logger = logging.getLogger(__name__)

ROUTES = web.RouteTableDef()
# Lines of output /jobs shows per job, and for how many jobs at most.
LIST_TAIL_LINES = 3
LIST_TAILS = 200


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
        "tail": [],
    }


def job_rows(client: papa.Papa) -> list[dict[str, Any]]:
    """The kernel's processes as /jobs shows them, with their last lines."""
    processes = client.list_processes()
    rows = [_row(name, info) for name, info in sorted(processes.items())]
    for row in rows[:LIST_TAILS]:
        row["tail"] = peek_output(client, row["name"], LIST_TAIL_LINES)
    return rows


@both(ROUTES, "GET", "/jobs")
async def jobs_list(request: web.Request) -> web.StreamResponse:
    rows = await console(request).kernel.call(job_rows)
    return respond(request, "jobs.html", {"jobs": rows})


@both(ROUTES, "GET", "/jobs/{name}")
async def job_page(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    # A name with a wildcard would list others: only the exact one is shown.
    processes = await console(request).kernel.call(lambda c: c.list_processes())
    if name not in processes:
        raise not_found(f"no process {name!r} in the papa kernel (see /jobs)")
    job = _row(name, processes[name])
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
