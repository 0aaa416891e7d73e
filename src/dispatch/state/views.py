"""Read-only views of runs, for ``dispatch show``, ``list`` and the progress
of ``dispatch go --wait``: plain data made from the persistent objects while
a transaction is open, printed after it is closed.

How a step is named comes from its kind (:mod:`dispatch.state.steps`).
"""

from __future__ import annotations

import collections
import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dispatch.state import deadletters, model, runindex
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
        "name": getattr(run, "name", None),
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


def output_tails(dispatch: model.Dispatch, run_id: str) -> dict[str, dict[str, Any]]:
    """The output tail of every attempt of run *run_id* that has one, by
    ``MESSAGE.ATTEMPT``: ``{"node", "message", "attempt", "tail"}``; what
    the run page streams as it is committed (every 5 s while a program
    runs, see :mod:`dispatch.state.programs`)."""
    run = find_run(dispatch, run_id)
    found = {}
    for node, step in run.steps.items():
        for message in step.messages(run):
            for attempt in message.attempts:
                fields = {
                    "output_tail": getattr(attempt, "output_tail", None),
                    "program": getattr(attempt, "program", None),
                }
                tail = output_tail(fields)
                if tail is not None:
                    found[f"{message.id}.{attempt.number}"] = {
                        "node": node,
                        "message": message.id,
                        "attempt": attempt.number,
                        "tail": tail,
                    }
    return found


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
                str(len(messages) + step.acknowledged),
                str(sum(message.deliveries for message in messages)),
                _where(last) if last is not None else "-",
                "-" if exit_code is None else str(exit_code),
            )
        )
    return rows


# The states a run can be listed by (see Run.status).
RUN_STATES = model.RUN_STATES
# Run ids are read from the index in slices of this many, newest first: a
# slice of a BTree's keys costs one walk, an index into it costs another.
SCAN_CHUNK = 256


@dataclass(frozen=True)
class RunPage:
    """One page of the runs list: rows (see :func:`run_summary`), whether
    a next page exists, and how many runs match when that is known without
    counting them (a filter by state alone, or none)."""

    rows: list[dict[str, Any]]
    page: int
    size: int
    has_next: bool
    total: int | None = None


def run_summary(run: model.Run) -> dict[str, Any]:
    """A JSON-ready line about *run*: what ``dispatch list`` shows, and the
    services of its steps (what the runs list filters on)."""
    states = [step.status(run) for step in run.steps.values()]
    return {
        "run": run.id,
        "name": run.name,
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
        queue = step_kinds.destination_queue(step) or step.get("topic")
        if queue:
            names.add(str(queue))
        if step.get("service"):
            names.add(str(step["service"]))
    return names


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
    since: float | None = None,
) -> RunPage:
    """Page *page* (from 1) of *size* runs, newest first, of *status*,
    with a step sent to *service*, of the recipe named *recipe* and
    started at *since* or later, when given.

    Without a filter the page is one slice of the runs; with one, it is
    read from the run index (:mod:`dispatch.state.runindex`): the key set
    of the recipe in the state, else of the recipe, else of the state,
    else of every run, from *since*;
    only the service filter reads the runs it passes over."""
    if page < 1 or size < 1:
        raise ValueError("page and size start at 1")
    if status is not None and status not in RUN_STATES:
        raise ValueError(f"no run state {status!r} (one of {', '.join(RUN_STATES)})")
    runs = dispatch.runs
    total: int | None
    if status is None and service is None and recipe is None and since is None:
        keys = runs.keys()
        count = len(keys)
        end = count - (page - 1) * size
        start = max(0, end - size)
        ids = reversed(list(keys[start:end])) if end > 0 else iter(())
        rows = [run_summary(runs[run_id]) for run_id in ids]
        return RunPage(rows, page, size, start > 0, count)
    index = runindex.index_of(dispatch)
    if index is None:
        logger.warning(
            "this database has no run index yet: the runs list reads every "
            "run (it is built when `dispatch web`, `dispatch go` or a service "
            "next opens the database)"
        )
        candidates: Iterator[str] = _scanned(dispatch, status, recipe, since)
        total = None
    else:
        candidates, total = _indexed(index, status, recipe, since)
    if service is not None:
        candidates = (i for i in candidates if service in services_of(runs[i]))
        total = None
    chosen = list(itertools.islice(candidates, (page - 1) * size, page * size + 1))
    rows = [run_summary(runs[run_id]) for run_id in chosen[:size]]
    return RunPage(rows, page, size, len(chosen) > size, total)


# Units of an age (``90s``, ``30m``, ``1h``, ``2d``, ``1w``), in seconds.
AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """Seconds in age *text*: a number and a unit of :data:`AGE_UNITS`
    (``1h``, ``1.5d``); ValueError saying how to write one otherwise."""
    number, unit = text.strip()[:-1], text.strip()[-1:].lower()
    try:
        seconds = float(number) * AGE_UNITS[unit]
    except (KeyError, ValueError):
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise ValueError(
            f"age {text!r} is not a positive number and a unit (s, m, h, d, w): "
            "for example 90s, 30m, 1h, 2d"
        )
    return seconds


def _indexed(
    index: runindex.RunIndex,
    status: str | None,
    recipe: str | None,
    since: float | None,
) -> tuple[Iterator[str], int | None]:
    """Run ids newest first from the index, and how many when known."""
    bound = None if since is None else runindex.since_key(since)
    if recipe is not None:
        found = index.recipes.get(recipe)
        if found is None:
            return iter(()), 0
        if status is None:
            ids = map(runindex.run_of_key, found.newest_first(bound))
            return ids, found.count() if bound is None else None
        both = index.recipe_in_state(recipe, status)
        if both is None:
            return iter(()), 0
        ids = map(runindex.run_of_key, both.newest_first(bound))
        return ids, both.count() if bound is None else None
    chosen = index.every if status is None else index.states[status]
    total = chosen.count() if bound is None else None
    return map(runindex.run_of_key, chosen.newest_first(bound)), total


def _scanned(
    dispatch: model.Dispatch,
    status: str | None,
    recipe: str | None,
    since: float | None,
) -> Iterator[str]:
    """Run ids newest first by a scan of every run (no index yet)."""
    runs = dispatch.runs
    for run_id in keys_newest_first(runs):
        run = runs[run_id]
        if status is not None and run.status != status:
            continue
        if recipe is not None and run.name != recipe:
            continue
        if since is not None and run.created < since:
            continue
        yield run_id


def figures(dispatch: model.Dispatch) -> dict[str, Any]:
    """What the console's ``/metrics`` reports of dispatch: pending
    messages per queue, dead letters per queue and in all, runs per state
    and transitions between states (from the run index's counters, no
    run is read), and running service instances per service."""
    index = runindex.index_of(dispatch)
    transitions: dict[tuple[str, str], int] = {}
    if index is None:
        logger.warning("no run index yet: counting runs per state reads every run")
        runs_by_state = dict.fromkeys(RUN_STATES, 0)
        for run in dispatch.runs.values():
            runs_by_state[run.status] += 1
    else:
        runs_by_state = {state: index.states[state].count() for state in RUN_STATES}
        transitions = index.transition_counts()
    instances: dict[str, int] = {}
    for instance in running_instances(dispatch):
        instances[instance.service] = instances.get(instance.service, 0) + 1
    return {
        "pending": {
            name: queue.pending_count() for name, queue in dispatch.queues.items()
        },
        "dead_letters": deadletters.dead_letter_counts(dispatch),
        "dead_letters_total": dispatch.dead_count(),
        "runs": runs_by_state,
        "transitions": transitions,
        "instances": instances,
    }


def running_instances(dispatch: model.Dispatch) -> list[model.ServiceInstance]:
    """Service instances that have not stopped, oldest first: from the
    running index (see admin.running_index), or every instance in a
    database made before it."""
    instances = getattr(dispatch, "running_instances", None)
    if instances is None:
        instances = getattr(dispatch, "instances", None) or {}
    return [instance for instance in instances.values() if instance.stopped is None]


def claims_by_process(
    dispatch: model.Dispatch, queue_name: str, now: float
) -> collections.Counter[tuple[Any, Any]]:
    """How many messages of *queue_name* each ``(host, pid)`` holds a
    claim on that has not lapsed.  A live claim's ready key is its lapse
    time, so only the keys after *now* are read (claims and delayed
    messages), not the whole queue."""
    held: collections.Counter[tuple[Any, Any]] = collections.Counter()
    queue = dispatch.queues.get(queue_name)
    if queue is None:
        return held
    for message in queue.ready.values(min=model.ready_bound(now)):
        claimed = message.claimed_by or {}
        if message.state == model.IN_PROGRESS and claimed:
            held[(claimed.get("host"), claimed.get("pid"))] += 1
    return held


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


def live_instances(
    dispatch: model.Dispatch, now: float, within: float
) -> list[dict[str, Any]]:
    """The running instances as ``dispatch status`` and the console show
    them: :func:`instance_document` plus ``claims`` (messages it holds),
    ``heartbeat`` (its last, or None before heartbeats) and ``state``
    (``stopping``, ``stale`` when no beat came within *within* seconds,
    else ``running``)."""
    claims: dict[str, collections.Counter[tuple[Any, Any]]] = {}
    documents = []
    for instance in running_instances(dispatch):
        if instance.queue not in claims:
            claims[instance.queue] = claims_by_process(dispatch, instance.queue, now)
        beat = instance.heartbeat.time if instance.heartbeat is not None else None
        if instance.stop_requested:
            state = "stopping"
        elif beat is not None and now - beat > within:
            state = "stale"
        else:
            state = "running"
        document = instance_document(instance)
        document["claims"] = claims[instance.queue][(instance.host, instance.pid)]
        document["heartbeat"] = beat
        document["state"] = state
        documents.append(document)
    return documents


def dead_letter_document(message: model.Message) -> dict[str, Any]:
    """A JSON-ready line about dead letter *message*."""
    return _document(message, DEAD_LETTER_FIELDS)
