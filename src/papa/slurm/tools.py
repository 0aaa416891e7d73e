"""Running Slurm's command-line tools, and reading what they print.

Every call has a timeout and returns the text or raises
:class:`SlurmCommandError` carrying Slurm's own error text, so callers can
tell "the controller did not answer" (:attr:`SlurmCommandError.unreachable`)
from "this job id is unknown" (:attr:`SlurmCommandError.unknown_job`): a
failed query must never be taken for a job that has gone.
"""

from __future__ import annotations

import logging
import subprocess

from ..errors import Error

log = logging.getLogger(__name__)

# sbatch and squeue answer in ~10 ms on a live controller; when slurmctld is
# down they fail at once, but a hung one makes them retry for a while.
COMMAND_TIMEOUT_SECONDS = 30
TERMINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "OUT_OF_MEMORY",
        "NODE_FAIL",
        "BOOT_FAIL",
        "DEADLINE",
        "PREEMPTED",
        "REVOKED",
        "SPECIAL_EXIT",
    }
)


class SlurmCommandError(Error):
    """A Slurm tool failed; the message is its stderr."""

    def __init__(self, command: str, message: str):
        super().__init__(f"{command}: {message}")
        self.command = command
        self.text = message

    @property
    def unknown_job(self) -> bool:
        """The controller answered that it does not know the job (purged)."""
        return "Invalid job id" in self.text

    @property
    def unreachable(self) -> bool:
        return not self.unknown_job


def run(arguments: list[str], input_text: str | None = None) -> str:
    """Run one Slurm tool; its stdout, or SlurmCommandError with its stderr."""
    try:
        completed = subprocess.run(
            arguments,
            input=input_text,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
        )
    except FileNotFoundError:
        raise SlurmCommandError(
            arguments[0], "not installed (no Slurm client tools on this machine)"
        )
    except subprocess.TimeoutExpired:
        raise SlurmCommandError(
            arguments[0], f"no answer within {COMMAND_TIMEOUT_SECONDS} s"
        )
    if completed.returncode != 0:
        text = (completed.stderr or completed.stdout).strip()
        raise SlurmCommandError(
            arguments[0], text or f"failed with exit code {completed.returncode}"
        )
    return completed.stdout


def submit(arguments: list[str], script: str) -> int:
    """``sbatch --parsable`` with the script on stdin; the job id."""
    output = run(["sbatch", "--parsable", *arguments], script)
    # Warnings may come first; the id is on the last line, "ID[;cluster]".
    lines = [line for line in output.splitlines() if line.strip()]
    try:
        return int(lines[-1].split(";")[0])
    except (IndexError, ValueError):
        raise SlurmCommandError("sbatch", f"no job id in its output: {output!r}")


Row = tuple[str, str, str, str]  # task id, state, reason, nodes ("" before a start)


def queue_states(job_ids: list[int]) -> dict[int, list[Row]]:
    """One ``squeue`` for many jobs: job id -> ``(task id, state, reason,
    nodes)`` rows.

    Ids Slurm no longer knows are simply missing (with several ids squeue
    answers rc 0; with one it fails with ``unknown_job``).  Array tasks are
    filed under their array's id, the id sbatch returned.
    """
    output = run(
        [
            "squeue",
            "-h",
            "-r",
            "-t",
            "all",
            "-j",
            ",".join(str(job_id) for job_id in job_ids),
            "-o",
            "%F|%i|%T|%r|%N",
        ]
    )
    states: dict[int, list[Row]] = {}
    for line in output.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 5 and parts[0].isdigit():
            row = (parts[1], parts[2], parts[3], parts[4])
            states.setdefault(int(parts[0]), []).append(row)
    return states


def job_rows(job_id: int) -> list[Row]:
    """``(task id, state, reason, nodes)`` rows from ``scontrol show job`` (a second opinion).

    Raises SlurmCommandError; ``unknown_job`` once Slurm has purged the job.
    """
    output = run(["scontrol", "-o", "show", "job", str(job_id)])
    rows = []
    for line in output.splitlines():
        fields = dict(word.split("=", 1) for word in line.split() if "=" in word)
        if "JobState" in fields:
            task = fields.get("JobId", "")
            if fields.get("ArrayTaskId"):
                task = f"{fields.get('ArrayJobId')}_{fields['ArrayTaskId']}"
            nodes = fields.get("NodeList", "")
            rows.append(
                (
                    task,
                    fields["JobState"],
                    fields.get("Reason", "None"),
                    "" if nodes == "(null)" else nodes,
                )
            )
    if not rows:
        raise SlurmCommandError("scontrol", f"Invalid job id {job_id} (no rows)")
    return rows


def job_exit_codes(job_id: int) -> dict[str, int]:
    """Exit codes from ``scontrol show job`` (per task), as papa reports them.

    Slurm's ``ExitCode=STATUS:SIGNAL`` becomes STATUS, or -SIGNAL when a
    signal ended the job (as a local child's exit code would read).
    """
    output = run(["scontrol", "-o", "show", "job", str(job_id)])
    codes = {}
    for line in output.splitlines():
        fields = dict(word.split("=", 1) for word in line.split() if "=" in word)
        task = fields.get("JobId", "")
        if fields.get("ArrayTaskId"):
            task = f"{fields.get('ArrayJobId')}_{fields['ArrayTaskId']}"
        try:
            codes[task] = _exit_code(fields.get("ExitCode", "0:0"))
        except ValueError:
            continue
    return codes


def _exit_code(text: str) -> int:
    """Slurm's ``STATUS:SIGNAL`` as papa reports it (-SIGNAL for a signal)."""
    status, _, signal = text.partition(":")
    return -int(signal) if int(signal or 0) else int(status)


_jobcomp_path: str | None = None


def jobcomp_path() -> str | None:
    """The ``jobcomp/filetxt`` log (``JobCompLoc``), or None when not used."""
    global _jobcomp_path
    if _jobcomp_path is None:
        fields = {}
        for line in run(["scontrol", "show", "config"]).splitlines():
            key, _, value = line.partition("=")
            fields[key.strip()] = value.strip()
        if fields.get("JobCompType") != "jobcomp/filetxt":
            return None
        _jobcomp_path = fields.get("JobCompLoc") or None
    return _jobcomp_path


def jobcomp_records(job_id: int) -> dict[str, tuple[str, int]]:
    """Task id -> ``(state, exit code)`` from the job completion log.

    The log keeps one line per finished job (array tasks under their own
    id, with ``ArrayJobId``) after Slurm purged it, so it gives the end of a
    job that ended while no kernel watched and wrote no exit-status file.
    Its ExitCode is 0:0 for timed-out and cancelled jobs: trust the state.
    Empty when the cluster keeps no such log or cannot be asked.
    """
    try:
        path = jobcomp_path()
    except SlurmCommandError as exc:
        log.info("cannot read Slurm's configuration: %s", exc)
        return {}
    if path is None:
        return {}
    records = {}
    wanted = (f"JobId={job_id} ", f"ArrayJobId={job_id} ")
    try:
        with open(path, errors="replace") as log_file:
            for line in log_file:
                if not any(word in line for word in wanted):
                    continue
                fields = dict(w.split("=", 1) for w in line.split() if "=" in w)
                task = fields.get("JobId", "")
                if fields.get("ArrayJobId") == str(job_id):
                    task = f"{job_id}_{fields.get('ArrayTaskId')}"
                elif task != str(job_id):
                    continue
                try:
                    code = _exit_code(fields.get("ExitCode", "0:0"))
                except ValueError:
                    continue
                records[task] = (fields.get("JobState", "ENDED"), code)
    except OSError as exc:
        log.info("cannot read the job completion log %s: %s", path, exc)
    return records


def cancel(job_id: int) -> None:
    run(["scancel", str(job_id)])


def sinfo() -> str:
    """sinfo's partition table: name|nodes A/I/O/T|cpus/node|cpus A/I/O/T|gres|mem|limit."""
    return run(["sinfo", "-a", "-h", "-o", "%P|%F|%c|%C|%G|%m|%l"])


def partition_names() -> list[str]:
    """The partitions the controller knows, the default one marked ``*``."""
    return run(["sinfo", "-h", "-o", "%P"]).split()
