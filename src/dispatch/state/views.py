"""Read-only views of runs, for ``dispatch show``, ``list`` and the progress
of ``dispatch go --wait``: plain data made from the persistent objects while
a transaction is open, printed after it is closed.

How a step is named comes from its kind (:mod:`dispatch.state.steps`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dispatch.state import deadletters, model
from dispatch.state import steps as step_kinds
from dispatch.state.recipe import SPECIAL_KEYS

logger = logging.getLogger(__name__)

# The attributes of a delivery that ``dispatch show`` reports, in its order.
ATTEMPT_FIELDS = (
    "number host pid consumer slurm_job started finished "
    "outcome exit_code error output_tail program"
).split()
# The columns of a progress row (see step_rows).
HEADINGS = ("STEP", "NAME", "STATUS", "MESSAGES", "DELIVERIES", "WHERE", "EXIT")


class RunNotFound(LookupError):
    """No run has the id asked for; the message says where to look."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run {run_id!r} (see `dispatch list`)")
        self.run_id = run_id


def find_run(dispatch: model.Dispatch, run_id: str) -> model.Run:
    """The run *run_id*; :class:`RunNotFound` when there is none."""
    run = dispatch.runs.get(run_id)
    if run is None:
        raise RunNotFound(run_id)
    return run


def step_states(dispatch: model.Dispatch, run_id: str) -> dict[int, str]:
    """``{node: status}`` of a run's steps."""
    run = dispatch.runs[run_id]
    return {node: step.status(run) for node, step in run.steps.items()}


def run_document(dispatch: model.Dispatch, run_id: str) -> dict[str, Any]:
    """A JSON-ready description of a run: steps, messages, attempts."""
    run = find_run(dispatch, run_id)
    steps = []
    for node, step in run.steps.items():
        messages = []
        for message in step.messages(run):
            attempts = [
                {key: getattr(attempt, key, None) for key in ATTEMPT_FIELDS}
                for attempt in message.attempts
            ]
            messages.append(
                {
                    "id": message.id,
                    "queue": message.queue,
                    "state": message.state,
                    "deliveries": message.deliveries,
                    "reason": message.reason,
                    "path": message.path,
                    "payload": message.payload,
                    "attempts": attempts,
                }
            )
        steps.append(
            {
                "node": node,
                "service": step.definition.get("service"),
                "status": step.status(run),
                "messages": messages,
            }
        )
    return {
        "run": run.id,
        "status": run.status,
        "created": run.created,
        "finished": run.finished,
        "parameters": run.parameters,
        "recipe": run.recipe,
        "steps": steps,
    }


def output_tail(attempt: dict[str, Any]) -> str | None:
    """The output tail of an attempt of :func:`run_document`: its own once
    it ended, its program record's while the program runs."""
    tail = attempt.get("output_tail") or (attempt.get("program") or {}).get(
        "output_tail"
    )
    return str(tail) if tail else None


def _where(attempt: Any) -> str:
    """Where a delivery ran: its Slurm job, else host and pid."""
    if getattr(attempt, "slurm_job", None):
        return f"slurm job {attempt.slurm_job}"
    return f"{attempt.host} pid {attempt.pid}"


def step_rows(dispatch: model.Dispatch, run_id: str) -> list[tuple[str, ...]]:
    """One tuple of texts per step of run *run_id*, in the order of
    :data:`HEADINGS`."""
    run = dispatch.runs[run_id]
    rows: list[tuple[str, ...]] = []
    for node, step in run.steps.items():
        messages = step.messages(run)
        attempts = [attempt for message in messages for attempt in message.attempts]
        last = max(attempts, key=lambda attempt: attempt.started, default=None)
        exit_code = last.exit_code if last is not None else None
        rows.append(
            (
                str(node),
                step_kinds.label(step.definition),
                step.status(run),
                str(len(messages)),
                str(sum(message.deliveries for message in messages)),
                _where(last) if last is not None else "-",
                "-" if exit_code is None else str(exit_code),
            )
        )
    return rows


# The states a run can be listed by (see Run.status).
RUN_STATES = (model.RUNNING, model.SUCCEEDED, model.FAILED, model.CANCELLED)
# Run ids are read from the index in slices of this many, newest first: a
# slice of a BTree's keys costs one walk, an index into it costs another.
SCAN_CHUNK = 256


@dataclass(frozen=True)
class RunPage:
    """One page of the runs list: rows (see :func:`run_summary`), and
    whether a next page exists."""

    rows: list[dict[str, Any]]
    page: int
    size: int
    has_next: bool


def run_summary(run: model.Run) -> dict[str, Any]:
    """A JSON-ready line about *run*: what ``dispatch list`` shows, and the
    services of its steps (what the runs list filters on)."""
    states = [step.status(run) for step in run.steps.values()]
    return {
        "run": run.id,
        "status": run.status,
        "created": run.created,
        "steps": len(states),
        "steps_done": sum(state == model.DONE for state in states),
        "services": sorted(services_of(run)),
    }


def services_of(run: model.Run) -> set[str]:
    """The names of the services and queues *run*'s steps are sent to,
    read from the run's recipe (no step object is loaded)."""
    names = set()
    for key, step in run.recipe.items():
        if key in SPECIAL_KEYS or not isinstance(step, dict):
            continue
        queue = step_kinds.destination_queue(step)
        if queue is not None:
            names.add(queue)
        if step.get("service"):
            names.add(str(step["service"]))
    return names


def recipe_matches(run: model.Run, text: str) -> bool:
    """True when *run*'s recipe ``description`` holds *text* (any case):
    recipes have no name of their own, their description says what they
    are."""
    description = run.recipe.get("description", run.recipe.get("comment")) or ""
    return text.lower() in str(description).lower()


def keys_newest_first(tree: Any) -> Iterator[str]:
    """The keys of BTree *tree*, greatest first (generated ids sort by
    creation time), read a slice at a time so that a page costs a few
    slices, not a walk over every entry."""
    keys = tree.keys()
    end = len(keys)
    while end > 0:
        start = max(0, end - SCAN_CHUNK)
        yield from reversed(list(keys[start:end]))
        end = start


def list_runs(
    dispatch: model.Dispatch,
    status: str | None = None,
    service: str | None = None,
    page: int = 1,
    size: int = 50,
    recipe: str | None = None,
) -> RunPage:
    """Page *page* (from 1) of *size* runs, newest first, of *status*,
    with a step sent to *service* and a recipe described by *recipe*
    (:func:`recipe_matches`) when given.  Without a filter the page is one
    slice of the index; with one, runs are read newest first until the
    page is full."""
    if page < 1 or size < 1:
        raise ValueError("page and size start at 1")
    if status is not None and status not in RUN_STATES:
        raise ValueError(f"no run state {status!r} (one of {', '.join(RUN_STATES)})")
    runs = dispatch.runs
    if status is None and service is None and recipe is None:
        keys = runs.keys()
        end = len(keys) - (page - 1) * size
        start = max(0, end - size)
        ids = reversed(list(keys[start:end])) if end > 0 else iter(())
        rows = [run_summary(runs[run_id]) for run_id in ids]
        return RunPage(rows, page, size, start > 0)
    skip = (page - 1) * size
    rows = []
    for run_id in keys_newest_first(runs):
        run = runs[run_id]
        if status is not None and run.status != status:
            continue
        if service is not None and service not in services_of(run):
            continue
        if recipe is not None and not recipe_matches(run, recipe):
            continue
        if skip:
            skip -= 1
            continue
        if len(rows) == size:
            return RunPage(rows, page, size, True)
        rows.append(run_summary(run))
    return RunPage(rows, page, size, False)


def figures(dispatch: model.Dispatch) -> dict[str, Any]:
    """What the console's ``/metrics`` reports of dispatch: pending
    messages per queue, dead letters per queue, runs per state and
    running service instances per service."""
    runs_by_state = dict.fromkeys(RUN_STATES, 0)
    for run in dispatch.runs.values():
        runs_by_state[run.status] += 1
    instances: dict[str, int] = {}
    for instance in running_instances(dispatch):
        instances[instance.service] = instances.get(instance.service, 0) + 1
    return {
        "pending": {
            name: queue.pending_count() for name, queue in dispatch.queues.items()
        },
        "dead_letters": deadletters.dead_letter_counts(dispatch),
        "runs": runs_by_state,
        "instances": instances,
    }


def running_instances(dispatch: model.Dispatch) -> list[model.ServiceInstance]:
    """Service instances that have not stopped, oldest first."""
    instances = getattr(dispatch, "instances", None) or {}
    return [instance for instance in instances.values() if instance.stopped is None]


# What the console shows of a service instance and of a dead letter:
# {key in the document: attribute}.
INSTANCE_FIELDS = {
    name: name for name in "id service queue host pid started stop_requested".split()
}
DEAD_LETTER_FIELDS = {
    "run": "run_id",
    **{
        name: name
        for name in "id node queue deliveries reason finished payload".split()
    },
}


def _document(record: Any, fields: dict[str, str]) -> dict[str, Any]:
    return {key: getattr(record, attribute, None) for key, attribute in fields.items()}


def instance_document(instance: model.ServiceInstance) -> dict[str, Any]:
    """A JSON-ready description of a service instance."""
    return _document(instance, INSTANCE_FIELDS)


def dead_letter_document(message: model.Message) -> dict[str, Any]:
    """A JSON-ready line about dead letter *message*."""
    return _document(message, DEAD_LETTER_FIELDS)
