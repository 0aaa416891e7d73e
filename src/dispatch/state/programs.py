"""The programs of ``command`` steps as papa processes: their names, their
record (and output tail) in the attempt, and the clean-up of programs nobody needs any more.

A step's program is named after its message (``dispatch-step.RUN.NODE.
MESSAGE``), so every delivery of one message means the same papa process:
a runner that gets a message again after its predecessor died finds the
program still running (or ended, its exit code kept by papa until a watcher
acknowledges it) and adopts it instead of starting a second copy.

What a delivery did with its program is kept in its attempt, as the plain
dict ``attempt.program`` (``name``, ``pid`` or ``slurm_job``, ``adopted``,
and ``exit_code``/``output_tail`` once the end was seen), committed as soon
as it is known, so ``dispatch show`` tells where a long job runs while it
runs, and an exit code seen just before a runner died is not lost.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

from dispatch.state import model

logger = logging.getLogger(__name__)

PREFIX = "dispatch-step"
# papa refuses spaces and ':' in names; dots separate our fields; a Slurm
# job's folder is named after its program (file names end at 255 bytes).
_UNSAFE = re.compile(r"[^A-Za-z0-9_+-]")
# A run id longer than this, or with other characters, is written as a
# readable prefix, "~" and a digest of the whole id (so distinct ids never
# share a name, and the name can be traced back to its run).
MAX_RUN_PART = 64
_READABLE_PREFIX = 40
# Outcomes of an attempt whose runner vanished without settling it.
VANISHED = ("died", "lapsed")
# Lines of output kept in the attempt: enough for a traceback's end.
OUTPUT_TAIL_LINES = 20
OUTPUT_TAIL_BYTES = 4096


def output_tail(data: bytes) -> str:
    """The last lines of a program's output *data* as text, as an attempt
    keeps them."""
    text = data[-OUTPUT_TAIL_BYTES:].decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-OUTPUT_TAIL_LINES:])


def run_part(run_id: Any) -> str:
    """*run_id* as written in program names: itself when papa takes it and
    it is short, else ``PREFIX~DIGEST`` ("~" never occurs in the first
    form, so the two cannot meet)."""
    text = str(run_id)
    safe = _UNSAFE.sub("_", text)
    if safe == text and len(text) <= MAX_RUN_PART:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{safe[:_READABLE_PREFIX]}~{digest}"


def program_name(run_id: Any, node: int, message_id: Any) -> str:
    """The papa name of the program of one message (stable across its
    deliveries)."""
    message_part = _UNSAFE.sub("_", str(message_id))
    return f"{PREFIX}.{run_part(run_id)}.{node}.{message_part}"


def parse_program_name(name: str) -> tuple[str, int, str] | None:
    """``(run id as written in the name, node, message id)`` or None when
    *name* is not a step program's."""
    head, dot, rest = name.partition(".")
    if head != PREFIX or not dot:
        return None
    parts = rest.rsplit(".", 2)
    if len(parts) != 3 or not (parts[1].isascii() and parts[1].isdigit()):
        return None
    return parts[0], int(parts[1]), parts[2]


def message_of(
    dispatch: model.Dispatch, name: str, digested: dict[Any, Any] | None = None
) -> model.Message | None:
    """The message whose program is papa process *name*, or None.

    A run id written with a digest is found among the run ids (once per
    *digested*, a dict the caller may keep for several names)."""
    parsed = parse_program_name(name)
    if parsed is None:
        return None
    written, node, message_id = parsed
    if "~" in written:
        if digested is None:
            digested = {}
        if not digested:
            digested.update(
                (run_part(run_id), run_id)
                for run_id in dispatch.runs.keys()
                if run_part(run_id) != run_id
            )
            digested.setdefault(None, None)  # looked once, even if none
        run_id = digested.get(written)
        run = None if run_id is None else dispatch.runs.get(run_id)
    else:
        run = dispatch.runs.get(written)
    if run is None:
        return None
    message = run.messages.get(message_id)
    if message is None or message.node != node:
        return None
    return message


def program_of(attempt: Any) -> dict[str, Any] | None:
    """The program record of *attempt* (a dict), or None."""
    return attempt.program


def note_program(attempt: Any, **fields: Any) -> None:
    """Add *fields* to the program record of *attempt* (the caller commits).
    The record is replaced, not mutated, so that ZODB sees the change."""
    record = dict(program_of(attempt) or {})
    record.update(fields)
    attempt.program = record
    if fields.get("slurm_job"):
        attempt.slurm_job = fields["slurm_job"]


def unsettled_result(message: model.Message, name: str) -> tuple[int, str] | None:
    """``(exit_code, output_tail)`` of the program *name* if an earlier
    delivery saw it end but its runner vanished before settling the
    message (died or lapsed), or this delivery committed its end already
    (a handler run again after its completion conflicted): the result
    stands, nothing runs again."""
    current = program_of(message.attempts[-1]) if message.attempts else None
    if current and current.get("name") == name:
        if current.get("exit_code") is not None:
            return current["exit_code"], current.get("output_tail") or ""
    for attempt in reversed(message.attempts[:-1]):
        record = program_of(attempt)
        if not record or record.get("name") != name:
            continue
        if attempt.outcome in VANISHED and record.get("exit_code") is not None:
            return record["exit_code"], record.get("output_tail") or ""
        return None
    return None


def earlier_output(message: model.Message, name: str) -> str:
    """The output tail kept by the delivery before this one if it left
    program *name* running or vanished while following it (empty
    otherwise): the start of an adopter's tail (what papa still holds
    follows it).  A follower that vanished committed its tail every few
    seconds, so what it read after its last note is missing."""
    for attempt in reversed(message.attempts[:-1]):
        record = program_of(attempt)
        if not record or record.get("name") != name:
            continue
        left = record.get("left_running") or attempt.outcome in VANISHED
        if left and record.get("exit_code") is None:
            return record.get("output_tail") or ""
        return ""
    return ""


def lost_program(message: model.Message, name: str) -> bool:
    """True when an earlier delivery started program *name* and nobody saw
    it end, yet papa does not know it (the caller checked): it may still
    run somewhere, or have ended with its exit code lost."""
    for attempt in reversed(message.attempts[:-1]):
        record = program_of(attempt)
        if record and record.get("name") == name:
            return record.get("exit_code") is None
    return False


def finished(dispatch: model.Dispatch, message: model.Message) -> bool:
    """True when nobody will need *message*'s program any more: the message
    is done, dead or cancelled, or its run is cancelled."""
    run = dispatch.runs.get(message.run_id)
    if run is not None and run.cancelled is not None:
        return True
    return message.state in (model.DONE, model.DEAD, model.CANCELLED_MESSAGE)


def sweep(
    kernel: Any, dispatch: model.Dispatch, papa_error: type[Exception]
) -> list[str]:
    """Stop and forget the step programs in papa whose message is finished
    (dead-lettered or cancelled while no runner watched it, or left behind
    by a runner that died after settling it).  Programs of pending and
    in-progress messages are kept: they are to be adopted.  Returns the
    names removed."""
    removed: list[str] = []
    digested: dict[Any, Any] = {}
    for name, info in kernel.list_processes(f"{PREFIX}.*").items():
        message = message_of(dispatch, name, digested)
        if message is None or not finished(dispatch, message):
            continue
        try:
            if info.get("running"):
                logger.warning(
                    "%s: %r is finished (%s); stopping its program",
                    name,
                    message,
                    message.state,
                )
                kernel.cancel_processes(name)
            kernel.remove_processes(name)
        except papa_error as error:
            logger.warning("%s: could not stop or remove it: %s", name, error)
            continue
        removed.append(name)
    return removed
