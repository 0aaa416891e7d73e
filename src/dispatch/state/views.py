"""Read-only views of runs, for ``dispatch show``, ``list`` and the progress
of ``dispatch go --wait``: plain data made from the persistent objects while
a transaction is open, printed after it is closed.

How a step is named comes from its kind (:mod:`dispatch.state.steps`).
"""

from __future__ import annotations

import logging
from typing import Any

from dispatch.state import model
from dispatch.state import steps as step_kinds

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
